import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, GrpcError, LOGGER, type Logger } from '@ai-platform/platform';
import type { SchedulerConfig } from '../config';
import { CallAborted } from '../engines/chat-stream';
import { EnginePool } from '../engines/engine-pool';
import { queueDepth, queueWait } from '../metrics';
import { ProviderRegistry } from '../providers/provider-registry';
import { FairQueue } from './fair-queue';
import { LANES, lanesAtOrAbove, QUEUE_SHARE_OF_TTFT_TARGET, type Lane } from './lanes';
import { headroomPolicy, laneSlots, meetsPrefillDeadline, prefillBudgetMs, type HeadroomPolicy, type PromptShape } from './headroom';
import { refusal, type RefusalReason } from './refusal';
import { saturationLimits, type SaturationLimits } from './saturation';

export { saturationLimits } from './saturation';


import { mayStart, servedBefore, TenantRunning } from './tenant-running';
import { laneKey, tenantShares, unlimitedShares, type Shares } from './tenant-shares';
import { ThroughputMeter } from './throughput';

export interface AdmissionRequest {
  model: string;
  lane: Lane;
  tenantId: string;
  signal: AbortSignal;
  /** The prompt, for the prefill estimate of interactive calls; without it only slots count. */
  prompt?: PromptShape;
}

export interface Admission {
  /** Send to an overflow provider: the local pool could not take the request within its deadline. */
  overflow: boolean;
  waitedMs: number;
  /** Call once the first attempt holds its engine (or the call ended): frees the reserved slot. */
  started(): void;
  /** Call at the first token: the call no longer waits (its tenant no longer holds others at their share). */
  firstToken(): void;
  /** Call when the call ended (any outcome): the tenant's running count drops and waiters may go. */
  finished(): void;
}

interface Waiter extends AdmissionRequest {
  enqueuedAt: number;
  resolve(admission: Admission): void;
  reject(error: unknown): void;
  cleanup(): void;
}

/**
 * Admission control and queueing. A call goes straight on when an engine has
 * a slot for its lane (batch: its share), can finish its prefill in time
 * (headroom.ts) and its tenant is within its shares (tenant-shares.ts);
 * otherwise it waits in its lane until that holds (lanes by priority, tenants
 * with the fewest running calls first), or is refused with a retry-after hint
 * when it cannot start within its share of the lane's TTFT target. Batch is
 * shed as soon as interactive traffic has to wait. See the README.
 */
@Injectable()
export class FlowController {
  private readonly lanes = new Map<Lane, FairQueue<Waiter>>(LANES.map((lane) => [lane, new FairQueue<Waiter>()]));
  /** Slots granted whose first attempt has not taken its engine yet, per model. */
  private readonly reserved = new Map<string, number>();
  private readonly running = new TenantRunning();
  /** Admitted calls without a first token yet: still waiting, in the engine's queue or prefill. */
  private readonly awaitingFirstToken = new TenantRunning();
  private readonly throughput = new ThroughputMeter(10_000);
  private readonly limits: SaturationLimits;
  private readonly headroom: HeadroomPolicy;

  constructor(
    @Inject(CONFIG) private readonly config: SchedulerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(EnginePool) private readonly pool: EnginePool,
    @Inject(ProviderRegistry) private readonly providers: ProviderRegistry,
  ) {
    this.limits = saturationLimits(config);
    this.headroom = headroomPolicy(config, this.limits);
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
    let total = 0;
    for (const count of this.reserved.values()) total += count;
    return total;
  }

  /** Admitted calls not finished yet, of one tenant or of all (for tests and the leak checks). */
  runningCalls(model?: string, tenantId?: string): number {
    return model !== undefined && tenantId !== undefined ? this.running.count(model, tenantId) : this.running.total();
  }

  /** Admitted calls without a first token yet (for the leak checks). */
  callsAwaitingFirstToken(): number {
    return this.awaitingFirstToken.total();
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
    // Waiters that can go now go first; then this call goes straight on if there is a slot for its lane and its tenant.
    if (this.depth() > 0) this.pump();
    if (this.capacity(request.model, request.lane) > 0 && this.tenantMayStart(request, this.tenantShares(request.model, request.lane)) && this.fits(request, 0)) return this.grant(request, now, false);
    const ahead = servedBefore(this.tenantShares(request.model, request.lane).waiting, request.tenantId);

    const overflow = this.providers.overflowFor(request.model, request.lane) !== undefined;
    // No engine could finish this prompt's prefill in time even if it went now: waiting only makes it later.
    if (request.lane !== 'batch' && !this.fits(request, 0, false)) {
      if (overflow) return this.grant(request, now, true);
      throw this.refuse(request, 'deadline', this.targetMs(request.lane));
    }
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

  /**
   * Admits waiters while their models have free slots: lanes strictly by
   * priority; within a lane the tenant with the fewest running calls first
   * (round robin among equals), and a tenant at its fair share only while no
   * other tenant waits.
   */
  pump(): void {
    for (const lane of LANES) {
      const queue = this.lanes.get(lane)!;
      if (queue.size === 0) continue;
      const free = new Map<string, number>();
      const capacity = (model: string) => {
        if (!free.has(model)) free.set(model, this.capacity(model, lane));
        return free.get(model)!;
      };
      const shares = new Map<string, Shares>();
      const sharesOf = (model: string) => {
        if (!shares.has(model)) shares.set(model, this.tenantShares(model, lane));
        return shares.get(model)!;
      };
      for (;;) {
        const waiter = queue.take(
          (item) => capacity(item.model) > 0 && this.tenantMayStart(item, sharesOf(item.model)) && this.fits(item, Date.now() - item.enqueuedAt),
          (head) => this.running.count(head.model, head.tenantId),
        );
        if (!waiter) break;
        const model = waiter.model;
        free.set(model, capacity(model) - 1);
        const waiting = sharesOf(model).waiting;
        const left = (waiting.get(waiter.tenantId) ?? 1) - 1;
        if (left > 0) waiting.set(waiter.tenantId, left);
        else waiting.delete(waiter.tenantId);
        sharesOf(model).blocking.add(waiter.tenantId);
        sharesOf(model).prefilling.set(waiter.tenantId, (sharesOf(model).prefilling.get(waiter.tenantId) ?? 0) + 1);
        waiter.cleanup();
        this.updateDepth(lane);
        waiter.resolve(this.grant(waiter, waiter.enqueuedAt, false));
      }
    }
  }

  private grant(request: AdmissionRequest, since: number, overflow: boolean): Admission {
    const waitedMs = Date.now() - since;
    queueWait.observe({ priority: request.lane, result: 'admitted' }, waitedMs / 1000);
    if (overflow) return { overflow, waitedMs, started: () => undefined, firstToken: () => undefined, finished: () => undefined };
    this.reserved.set(request.model, (this.reserved.get(request.model) ?? 0) + 1);
    this.running.add(request.model, request.tenantId);
    this.awaitingFirstToken.add(laneKey(request.model, request.lane), request.tenantId);
    let started = false;
    let finished = false;
    let firstToken = false;
    const first = () => {
      if (firstToken) return;
      firstToken = true;
      this.awaitingFirstToken.remove(laneKey(request.model, request.lane), request.tenantId);
    };
    const start = () => {
      if (started) return;
      started = true;
      const left = (this.reserved.get(request.model) ?? 1) - 1;
      if (left > 0) this.reserved.set(request.model, left);
      else this.reserved.delete(request.model);
    };
    return {
      overflow,
      waitedMs,
      started: start,
      firstToken: first,
      finished: () => {
        if (finished) return;
        finished = true;
        start();
        first();
        this.running.remove(request.model, request.tenantId);
        this.pump();
      },
    };
  }

  /**
   * Slots for a request of `lane` on the healthy engines serving `model`
   * (see `laneSlots`: batch share, prefill backlog), less slots already
   * granted but not yet taken.
   */
  private capacity(model: string, lane: Lane): number {
    const now = Date.now();
    let slots = 0;
    for (const engine of this.pool.candidates(model)) if (engine.breaker.allows(now)) slots += laneSlots(engine, lane, this.headroom, now);
    // Granted calls not on an engine yet will take slots of some lane: all of them count against every lane.
    return slots - (this.reserved.get(model) ?? 0);
  }

  /** Whether some engine with room for the call can also finish its prefill in time (see headroom.ts); without a prompt only slots count. */
  private fits(request: AdmissionRequest, waitedMs: number, withSlots = true): boolean {
    if (!request.prompt) return true;
    const budgetMs = prefillBudgetMs(request.lane, this.targetMs(request.lane), waitedMs, this.headroom);
    const interactive = request.lane === 'batch' && this.interactiveWaiting(request.model);
    return meetsPrefillDeadline(this.pool.candidates(request.model), request.lane, request.prompt, budgetMs, this.headroom, withSlots, interactive);
  }

  /** Each tenant's fair share of the model's slots, and who waits at or above `lane` (tenant → queued calls). */
  private tenantShares(model: string, lane: Lane): Shares {
    const queued = lanesAtOrAbove(lane).map((above) => this.lanes.get(above)!.countsByTenant((item) => item.model === model));
    if (!this.config.TENANT_FAIR_SHARE) return unlimitedShares(queued);
    return tenantShares({ model, lane, queued, running: this.running, awaitingFirstToken: this.awaitingFirstToken, engines: this.pool.candidates(model), limits: this.limits });
  }

  private tenantMayStart(request: AdmissionRequest, shares: Shares): boolean {
    const underShare = this.running.count(request.model, request.tenantId) < shares.share && (shares.prefilling.get(request.tenantId) ?? 0) < shares.prefillShare;
    return mayStart(underShare, shares.blocking, request.tenantId);
  }

  private interactiveWaiting(model: string): boolean {
    for (const lane of ['interactive_premium', 'interactive_standard'] as const) for (const waiter of this.lanes.get(lane)!.items()) if (waiter.model === model) return true;
    return false;
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

  private refuse(request: AdmissionRequest, reason: RefusalReason, retryAfterMs: number): GrpcError {
    return refusal(request, reason, retryAfterMs, this.targetMs(request.lane), this.logger);
  }

  private updateDepth(lane: Lane) {
    queueDepth.set({ priority: lane }, this.lanes.get(lane)!.size);
  }
}

