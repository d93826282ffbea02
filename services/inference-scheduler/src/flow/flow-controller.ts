import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, GrpcError, GrpcStatus, LOGGER, type Logger } from '@ai-platform/platform';
import type { SchedulerConfig } from '../config';
import { CallAborted } from '../engines/chat-stream';
import { EnginePool } from '../engines/engine-pool';
import { queueDepth, queueWait, shedRequests } from '../metrics';
import { ProviderRegistry } from '../providers/provider-registry';
import { FairQueue } from './fair-queue';
import { LANES, lanesAtOrAbove, QUEUE_SHARE_OF_TTFT_TARGET, type Lane } from './lanes';
import { freeSlots, type SaturationLimits } from './saturation';
import { ThroughputMeter } from './throughput';

export interface AdmissionRequest {
  model: string;
  lane: Lane;
  tenantId: string;
  signal: AbortSignal;
}

export interface Admission {
  /** Send to an overflow provider: the local pool could not take the request within its deadline. */
  overflow: boolean;
  waitedMs: number;
  /** Call once the first attempt holds its engine (or the call ended): frees the reserved slot. */
  started(): void;
}

interface Waiter extends AdmissionRequest {
  enqueuedAt: number;
  resolve(admission: Admission): void;
  reject(error: unknown): void;
  cleanup(): void;
}

/**
 * Admission control and queueing. A request goes straight through while the
 * engines serving its model have free slots and nobody of its lane or above is
 * waiting; otherwise it waits in its lane (fair across tenants) until a slot
 * frees, lanes served strictly by priority. A request that cannot start within
 * its share of the lane's TTFT target is refused at once (predicted from the
 * recent completion rate) or when its deadline passes, with a retry-after
 * hint; batch is shed as soon as interactive traffic has to wait.
 */
@Injectable()
export class FlowController {
  private readonly lanes = new Map<Lane, FairQueue<Waiter>>(LANES.map((lane) => [lane, new FairQueue<Waiter>()]));
  /** Slots granted whose first attempt has not taken its engine yet, per model. */
  private readonly reserved = new Map<string, number>();
  private readonly throughput = new ThroughputMeter(10_000);
  private readonly limits: SaturationLimits;

  constructor(
    @Inject(CONFIG) private readonly config: SchedulerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(EnginePool) private readonly pool: EnginePool,
    @Inject(ProviderRegistry) private readonly providers: ProviderRegistry,
  ) {
    this.limits = saturationLimits(config);
    for (const lane of LANES) queueDepth.set({ priority: lane }, 0);
    pool.onCapacityChange((released) => {
      if (released) this.throughput.record();
      this.pump();
    });
  }

  /** Requests waiting now, per lane (for tests and the leak checks). */
  depth(lane?: Lane): number {
    return lane ? this.lanes.get(lane)!.size : LANES.reduce((total, name) => total + this.lanes.get(name)!.size, 0);
  }

  reservedSlots(): number {
    return [...this.reserved.values()].reduce((total, count) => total + count, 0);
  }

  targetMs(lane: Lane): number {
    return lane === 'interactive_premium' ? this.config.TTFT_TARGET_PREMIUM_MS : lane === 'interactive_standard' ? this.config.TTFT_TARGET_STANDARD_MS : this.config.TTFT_TARGET_BATCH_MS;
  }

  async admit(request: AdmissionRequest): Promise<Admission> {
    if (request.signal.aborted) throw new CallAborted(request.signal.reason);
    const now = Date.now();
    // Without a healthy engine whose breaker lets traffic through there is nothing
    // to wait for: routing answers at once (a fallback provider, or UNAVAILABLE).
    if (!this.pool.candidates(request.model).some((engine) => engine.breaker.allows(now))) return this.grant(request, now, false);
    const ahead = lanesAtOrAbove(request.lane).reduce((total, lane) => total + this.waitingFor(lane, request.model), 0);
    if (ahead === 0 && this.capacity(request.model) > 0) return this.grant(request, now, false);

    const overflow = this.providers.overflowFor(request.model, request.lane) !== undefined;
    const budgetMs = this.targetMs(request.lane) * QUEUE_SHARE_OF_TTFT_TARGET;
    const rate = this.throughput.perSecond(now);
    const predictedMs = rate > 0 ? ((ahead + 1) / rate) * 1000 : undefined;
    if (request.lane === 'batch' && this.config.SHED_BATCH_WHEN_SATURATED && this.interactiveWaiting(request.model)) {
      throw this.refuse(request, 'shed_batch', predictedMs ?? budgetMs);
    }
    if (predictedMs !== undefined && predictedMs > budgetMs) {
      if (overflow) return this.grant(request, now, true);
      throw this.refuse(request, 'deadline', predictedMs);
    }
    if (this.lanes.get(request.lane)!.size >= this.config.QUEUE_MAX_PER_PRIORITY) {
      if (overflow) return this.grant(request, now, true);
      throw this.refuse(request, 'queue_full', predictedMs ?? budgetMs);
    }
    if (request.lane !== 'batch' && this.config.SHED_BATCH_WHEN_SATURATED) this.shedQueuedBatch(request.model);
    return this.enqueue(request, now, budgetMs, overflow);
  }

  private enqueue(request: AdmissionRequest, now: number, budgetMs: number, overflow: boolean): Promise<Admission> {
    return new Promise<Admission>((resolve, reject) => {
      const lane = this.lanes.get(request.lane)!;
      const expire = setTimeout(() => {
        if (!lane.remove(waiter)) return;
        waiter.cleanup();
        this.updateDepth(request.lane);
        if (overflow) return resolve(this.grant(request, now, true));
        queueWait.observe({ priority: request.lane, result: 'rejected' }, (Date.now() - now) / 1000);
        reject(this.refuse(request, 'expired', budgetMs));
      }, budgetMs);
      const onAbort = () => {
        if (!lane.remove(waiter)) return;
        waiter.cleanup();
        this.updateDepth(request.lane);
        queueWait.observe({ priority: request.lane, result: 'cancelled' }, (Date.now() - now) / 1000);
        reject(new CallAborted(request.signal.reason));
      };
      const waiter: Waiter = {
        ...request,
        enqueuedAt: now,
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(expire);
          request.signal.removeEventListener('abort', onAbort);
        },
      };
      request.signal.addEventListener('abort', onAbort, { once: true });
      lane.push(waiter);
      this.updateDepth(request.lane);
      this.logger.debug({ priority: request.lane, tenant: request.tenantId, depth: lane.size }, 'request queued for admission');
    });
  }

  /** Admits waiters while their models have free slots: lanes strictly by priority, tenants in turn. */
  pump(): void {
    const free = new Map<string, number>();
    const capacity = (model: string) => {
      if (!free.has(model)) free.set(model, this.capacity(model));
      return free.get(model)!;
    };
    for (const lane of LANES) {
      const queue = this.lanes.get(lane)!;
      for (;;) {
        const waiter = queue.take((item) => capacity(item.model) > 0);
        if (!waiter) break;
        free.set(waiter.model, capacity(waiter.model) - 1);
        waiter.cleanup();
        this.updateDepth(lane);
        waiter.resolve(this.grant(waiter, waiter.enqueuedAt, false));
      }
    }
  }

  private grant(request: AdmissionRequest, since: number, overflow: boolean): Admission {
    const waitedMs = Date.now() - since;
    queueWait.observe({ priority: request.lane, result: 'admitted' }, waitedMs / 1000);
    if (overflow) return { overflow, waitedMs, started: () => undefined };
    this.reserved.set(request.model, (this.reserved.get(request.model) ?? 0) + 1);
    let done = false;
    return {
      overflow,
      waitedMs,
      started: () => {
        if (done) return;
        done = true;
        const left = (this.reserved.get(request.model) ?? 1) - 1;
        if (left > 0) this.reserved.set(request.model, left);
        else this.reserved.delete(request.model);
      },
    };
  }

  /** Free slots for `model` on its healthy engines, less slots already granted but not yet taken. */
  private capacity(model: string): number {
    const now = Date.now();
    let slots = 0;
    for (const engine of this.pool.candidates(model)) if (engine.breaker.allows(now)) slots += freeSlots(engine, this.limits, now);
    return slots - (this.reserved.get(model) ?? 0);
  }

  private waitingFor(lane: Lane, model: string): number {
    let count = 0;
    for (const waiter of this.lanes.get(lane)!.items()) if (waiter.model === model) count++;
    return count;
  }

  private interactiveWaiting(model: string): boolean {
    return this.waitingFor('interactive_premium', model) + this.waitingFor('interactive_standard', model) > 0;
  }

  private shedQueuedBatch(model: string) {
    const batch = this.lanes.get('batch')!;
    for (const waiter of [...batch.items()]) {
      if (waiter.model !== model || !batch.remove(waiter)) continue;
      waiter.cleanup();
      queueWait.observe({ priority: 'batch', result: 'rejected' }, (Date.now() - waiter.enqueuedAt) / 1000);
      waiter.reject(this.refuse(waiter, 'shed_batch', this.targetMs('batch') * QUEUE_SHARE_OF_TTFT_TARGET));
    }
    this.updateDepth('batch');
  }

  private refuse(request: AdmissionRequest, reason: 'deadline' | 'queue_full' | 'shed_batch' | 'expired', retryAfterMs: number): GrpcError {
    shedRequests.inc({ priority: request.lane, reason });
    const retryAfter = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
    const target = this.targetMs(request.lane);
    const text: Record<typeof reason, string> = {
      deadline: `cannot start within the ${target} ms time-to-first-token target of ${request.lane} requests: the engines for ${request.model} are saturated`,
      queue_full: `the ${request.lane} queue for ${request.model} is full`,
      shed_batch: `batch request shed: the engines for ${request.model} are saturated by interactive traffic`,
      expired: `waited for an engine for ${request.model} until the ${request.lane} deadline (${target} ms time-to-first-token target)`,
    };
    this.logger.info({ priority: request.lane, tenant: request.tenantId, model: request.model, reason, retry_after_s: retryAfter }, 'request refused by admission control');
    // Batch shedding is the server protecting itself (503); a miss of an interactive deadline is "too many requests now" (429).
    const code = reason === 'shed_batch' ? GrpcStatus.UNAVAILABLE : GrpcStatus.RESOURCE_EXHAUSTED;
    return new GrpcError(code, `${text[reason]}; retry after ${retryAfter} s`, { 'retry-after': retryAfter });
  }

  private updateDepth(lane: Lane) {
    queueDepth.set({ priority: lane }, this.lanes.get(lane)!.size);
  }
}

export function saturationLimits(config: SchedulerConfig): SaturationLimits {
  return {
    maxLoad: config.ENGINE_MAX_LOAD,
    maxWaiting: config.ENGINE_MAX_WAITING,
    maxKvUsage: config.ENGINE_MAX_KV_USAGE,
    metricsStaleMs: config.ENGINE_METRICS_STALE_MS,
    staleMaxInFlight: config.STALE_ENGINE_MAX_INFLIGHT,
  };
}
