import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { CONFIG, HealthRegistry, LOGGER, type Logger } from '@ai-platform/platform';
import type { SchedulerConfig } from '../config';
import {
  engineBreakerState,
  engineHealthy,
  engineInFlight,
  engineKvCacheUsage,
  engineMetricsAge,
  enginePollFailures,
  enginePrefixCacheHitRatio,
  engineScrapedRequests,
} from '../metrics';
import { breakerOptions } from '../resilience/breaker-config';
import { CircuitBreaker } from '../resilience/circuit-breaker';
import { Engine, type ServedModel } from './engine';
import { discard, errorMessage, readBodyText, send, type EngineResponse } from './http';
import { readEngineLoad } from './prometheus';

const MAX_POLL_BODY_BYTES = 4 * 1024 * 1024;
/** Consecutive timed-out polls that take a healthy engine out of rotation. */
const TIMEOUTS_BEFORE_UNHEALTHY = 2;

class PollTimeout extends Error {}

/** A poll request that ran out of time (before or while reading the body). */
function isTimeout(reason: unknown): boolean {
  return reason instanceof PollTimeout || (reason instanceof Error && reason.name === 'TimeoutError');
}

/** Parses vLLM's `GET /v1/models` answer; entries without a string id are skipped. */
export function parseModelList(body: unknown): ServedModel[] {
  const data = (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) throw new Error('no "data" array in /v1/models response');
  const models: ServedModel[] = [];
  for (const entry of data) {
    const id = (entry as { id?: unknown } | null)?.id;
    if (typeof id !== 'string' || id.length === 0 || id.length > 256) continue;
    const maxModelLen = (entry as { max_model_len?: unknown }).max_model_len;
    const task = (entry as { task?: unknown }).task === 'embed' ? { task: 'embed' as const } : {};
    models.push({ id, ...(typeof maxModelLen === 'number' && Number.isSafeInteger(maxModelLen) && maxModelLen > 0 ? { maxModelLen } : {}), ...task });
  }
  return models;
}

export interface ModelAvailability {
  id: string;
  kind: 'chat' | 'embedding';
  /** Smallest context length among the ready engines serving it (0 when none says). */
  contextLength: number;
  readyEngines: number;
}

/**
 * The static engine pool. Every engine is polled on an interval for health
 * (`/health`), the models it serves (`/v1/models`) and its load (`/metrics`).
 * A Generate attempt that cannot connect marks its engine unhealthy at once;
 * the next successful poll brings it back.
 */
@Injectable()
export class EnginePool implements OnModuleInit, OnModuleDestroy {
  /** Every engine of every source, static and discovered; replaced (never mutated) when sources change. */
  engines: Engine[] = [];
  private readonly sources = new Map<string, Engine[]>();
  private readonly capacityListeners: Array<(released: boolean) => void> = [];
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private polling?: Promise<void>;

  constructor(
    @Inject(CONFIG) private readonly config: SchedulerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(HealthRegistry) health: HealthRegistry,
  ) {
    this.setSource('static', config.ENGINES);
    health.register('engines', async () => {
      if (!this.engines.some((engine) => engine.healthy)) throw new Error(`no healthy engine among ${this.engines.map((engine) => engine.id).join(', ') || '(none discovered)'}`);
    });
  }

  /**
   * Replaces the engines one source (static list, a discovery watch) provides.
   * Engines that stay keep their state (health, load, prefix index, breaker);
   * new ones are polled at once; removed ones leave routing now, while calls
   * already on them finish.
   */
  setSource(source: string, urls: readonly string[]): void {
    const previous = new Map((this.sources.get(source) ?? []).map((engine) => [engine.id, engine]));
    const others = new Set([...this.sources.entries()].filter(([name]) => name !== source).flatMap(([, engines]) => engines.map((engine) => engine.id)));
    const next: Engine[] = [];
    const added: Engine[] = [];
    for (const url of urls) {
      const candidate = Engine.fromUrl(url);
      if (others.has(candidate.id) || next.some((engine) => engine.id === candidate.id)) continue;
      const kept = previous.get(candidate.id);
      if (kept) {
        next.push(kept);
        previous.delete(candidate.id);
        continue;
      }
      candidate.breaker = new CircuitBreaker(breakerOptions(this.config));
      next.push(candidate);
      added.push(candidate);
      engineHealthy.set({ engine: candidate.id }, 0);
      engineInFlight.set({ engine: candidate.id }, 0);
      engineBreakerState.set({ engine: candidate.id }, 0);
    }
    this.sources.set(source, next);
    this.engines = [...this.sources.values()].flat();
    for (const removed of previous.values()) {
      removed.healthy = false;
      for (const gauge of [engineHealthy, engineInFlight, engineBreakerState, engineKvCacheUsage, engineMetricsAge, enginePrefixCacheHitRatio]) gauge.remove({ engine: removed.id });
      engineScrapedRequests.remove({ engine: removed.id, state: 'running' });
      engineScrapedRequests.remove({ engine: removed.id, state: 'waiting' });
    }
    if (added.length > 0 || previous.size > 0) {
      this.logger.info({ source, added: added.map((engine) => engine.id), removed: [...previous.keys()], engines: this.engines.length }, 'engine pool changed');
    }
    if (!this.stopped && added.length > 0 && this.timer) void Promise.all(added.map((engine) => this.poll(engine))).then(() => this.notify(false));
  }

  /** Called when capacity may have changed: `released` = one of our requests left an engine. */
  onCapacityChange(listener: (released: boolean) => void): void {
    this.capacityListeners.push(listener);
  }

  private notify(released: boolean) {
    for (const listener of this.capacityListeners) listener(released);
  }

  /** Publishes an engine's breaker state (0 closed, 1 half-open, 2 open). */
  reportBreaker(engine: Engine): void {
    engineBreakerState.set({ engine: engine.id }, engine.breaker.state === 'closed' ? 0 : engine.breaker.state === 'half_open' ? 1 : 2);
  }

  async onModuleInit(): Promise<void> {
    this.stopped = false;
    await this.pollAll();
    this.logger.info(
      { engines: this.engines.map((engine) => ({ id: engine.id, healthy: engine.healthy, models: engine.models.map((model) => model.id), ...(engine.lastError ? { problem: engine.lastError } : {}) })) },
      'engine pool polled',
    );
    this.schedule();
  }

  onModuleDestroy(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Healthy engines serving `model`. */
  candidates(model: string): Engine[] {
    return this.engines.filter((engine) => engine.healthy && engine.serves(model));
  }

  /** Whether any engine served `model` at its last successful poll, healthy now or not. */
  isKnownModel(model: string): boolean {
    return this.engines.some((engine) => engine.serves(model));
  }

  /** Every model some engine reported at its last successful poll. */
  knownModels(): string[] {
    return [...new Set(this.engines.flatMap((engine) => engine.models.map((model) => model.id)))].sort();
  }

  /** Models served by at least one healthy engine. */
  availableModels(): ModelAvailability[] {
    const byModel = new Map<string, ModelAvailability>();
    for (const engine of this.engines) {
      if (!engine.healthy) continue;
      for (const served of [...engine.models, ...engine.embeddingModels]) {
        const entry = byModel.get(served.id) ?? { id: served.id, kind: served.task === 'embed' ? ('embedding' as const) : ('chat' as const), contextLength: 0, readyEngines: 0 };
        entry.readyEngines++;
        if (served.maxModelLen !== undefined) entry.contextLength = entry.contextLength === 0 ? served.maxModelLen : Math.min(entry.contextLength, served.maxModelLen);
        byModel.set(served.id, entry);
      }
    }
    return [...byModel.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Counts one of our requests on `engine` (`batch`: a batch-lane request); returns its release. */
  acquire(engine: Engine, batch = false): () => void {
    engine.acquire(batch);
    engineInFlight.set({ engine: engine.id }, engine.inFlight);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      engine.release(batch);
      engineInFlight.set({ engine: engine.id }, engine.inFlight);
      this.notify(true);
    };
  }

  /** Takes an engine out of rotation after a failed call; the next good poll restores it. */
  markFailed(engine: Engine, reason: string): void {
    if (engine.healthy) this.logger.warn({ engine: engine.id, reason }, 'engine failed a request; out of rotation until its next successful poll');
    this.setHealth(engine, false, reason);
  }

  /** Polls every engine once (concurrent polls share one pass). */
  pollAll(): Promise<void> {
    this.polling ??= Promise.all(this.engines.map((engine) => this.poll(engine))).then(
      () => {
        this.polling = undefined;
        this.notify(false);
      },
      (error) => {
        this.polling = undefined;
        this.logger.error({ err: error }, 'engine poll pass failed');
      },
    );
    return this.polling;
  }

  private schedule() {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.pollAll().finally(() => this.schedule());
    }, this.config.ENGINE_POLL_INTERVAL_MS);
    this.timer.unref();
  }

  private async get(engine: Engine, path: string): Promise<EngineResponse> {
    let response: EngineResponse;
    try {
      response = await send(`${engine.baseUrl}${path}`, { signal: AbortSignal.timeout(this.config.ENGINE_POLL_TIMEOUT_MS), headers: { accept: '*/*' } });
    } catch (error) {
      if ((error as Error).name === 'TimeoutError') throw new PollTimeout(`GET ${path} timed out after ${this.config.ENGINE_POLL_TIMEOUT_MS} ms`);
      throw error;
    }
    if (!response.ok) {
      await discard(response);
      throw new Error(`GET ${path} answered ${response.status}`);
    }
    return response;
  }

  private async poll(engine: Engine): Promise<void> {
    engine.beginScrape();
    const [health, models, metrics] = await Promise.allSettled([
      this.get(engine, '/health').then(discard),
      this.get(engine, '/v1/models').then(async (response) => parseModelList(JSON.parse(await readBodyText(response, MAX_POLL_BODY_BYTES)))),
      this.get(engine, '/metrics').then(async (response) => readEngineLoad(await readBodyText(response, MAX_POLL_BODY_BYTES))),
    ]);
    engine.lastPolledAt = Date.now();

    if (models.status === 'fulfilled') {
      engine.models = models.value.filter((model) => model.task !== 'embed');
      engine.embeddingModels = models.value.filter((model) => model.task === 'embed');
    }
    else enginePollFailures.inc({ engine: engine.id, endpoint: 'models' });
    if (health.status === 'rejected') enginePollFailures.inc({ engine: engine.id, endpoint: 'health' });

    if (metrics.status === 'fulfilled' && metrics.value) {
      engine.endScrape(metrics.value);
      engineScrapedRequests.set({ engine: engine.id, state: 'running' }, metrics.value.running);
      engineScrapedRequests.set({ engine: engine.id, state: 'waiting' }, metrics.value.waiting);
      if (metrics.value.kvCacheUsage !== undefined) engineKvCacheUsage.set({ engine: engine.id }, metrics.value.kvCacheUsage);
      const { prefixCacheQueries: queries, prefixCacheHits: hits } = metrics.value;
      if (queries !== undefined && hits !== undefined && queries > 0) enginePrefixCacheHitRatio.set({ engine: engine.id }, hits / queries);
    } else {
      // Unknown load counts as none from others for now; once the last good
      // scrape is older than ENGINE_METRICS_STALE_MS the engine counts as saturated.
      engine.endScrape(undefined);
      enginePollFailures.inc({ engine: engine.id, endpoint: 'metrics' });
    }
    const age = engine.metricsAgeMs(engine.lastPolledAt);
    if (Number.isFinite(age)) engineMetricsAge.set({ engine: engine.id }, age / 1000);

    // A poll that only timed out is forgiven once: a busy engine may answer
    // late. Refused connections and explicit failures count at once.
    const timedOut = [health, models].some((result) => result.status === 'rejected' && isTimeout(result.reason));
    const hardFailure = [health, models].some((result) => result.status === 'rejected' && !isTimeout(result.reason));
    engine.consecutiveTimeouts = timedOut && !hardFailure ? engine.consecutiveTimeouts + 1 : 0;
    if (timedOut && !hardFailure && engine.healthy && engine.consecutiveTimeouts < TIMEOUTS_BEFORE_UNHEALTHY) {
      this.logger.warn({ engine: engine.id }, 'engine poll timed out; keeping it in rotation for now');
      return;
    }

    const problem =
      health.status === 'rejected'
        ? `health: ${errorMessage(health.reason)}`
        : models.status === 'rejected'
          ? `models: ${errorMessage(models.reason)}`
          : engine.models.length === 0
            ? 'serves no model'
            : undefined;
    this.setHealth(engine, problem === undefined, problem);
  }

  private setHealth(engine: Engine, healthy: boolean, problem?: string) {
    const was = engine.healthy;
    engine.healthy = healthy;
    engine.lastError = problem;
    engineHealthy.set({ engine: engine.id }, healthy ? 1 : 0);
    if (healthy && !was) this.logger.info({ engine: engine.id, models: engine.models.map((model) => model.id) }, 'engine ready');
    else if (!healthy && was) this.logger.warn({ engine: engine.id, problem }, 'engine not ready');
  }
}
