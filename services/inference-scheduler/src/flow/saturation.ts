import type { SchedulerConfig } from '../config';
import type { Engine } from '../engines/engine';

/** When an engine counts as full: no new request should be sent to it now. */
export interface SaturationLimits {
  /** Requests open or queued on the engine (ours + others' from its metrics) at which it is full. */
  maxLoad: number;
  /** Requests waiting in the engine's own queue at which it is full. */
  maxWaiting: number;
  /** KV-cache usage (0..1) at which it is full. */
  maxKvUsage: number;
  /** Metrics older than this count as saturation: we cannot tell how full the engine is. */
  metricsStaleMs: number;
  /** Our requests an engine with stale metrics still gets: enough to notice when it recovers, not enough to pile on. */
  staleMaxInFlight: number;
}

/** Why the engine is full, or undefined when it can take a request. Provider engines are never full here. */
export function saturationReason(engine: Engine, limits: SaturationLimits, now = Date.now()): string | undefined {
  if (engine.kind !== 'vllm') return undefined;
  if (engine.metricsAgeMs(now) > limits.metricsStaleMs) return 'stale_metrics';
  if (engine.load >= limits.maxLoad) return 'load';
  const scraped = engine.scraped;
  if (scraped && scraped.waiting >= limits.maxWaiting) return 'waiting';
  if (scraped?.kvCacheUsage !== undefined && scraped.kvCacheUsage >= limits.maxKvUsage) return 'kv_cache';
  return undefined;
}

/** Requests the engine can take now before it counts as full. */
export function freeSlots(engine: Engine, limits: SaturationLimits, now = Date.now()): number {
  if (engine.kind !== 'vllm') return Number.POSITIVE_INFINITY;
  if (engine.metricsAgeMs(now) > limits.metricsStaleMs) return Math.max(0, limits.staleMaxInFlight - engine.inFlight);
  const reason = saturationReason(engine, limits, now);
  return reason === undefined ? Math.max(0, limits.maxLoad - engine.load) : 0;
}

/**
 * Batch requests of ours the engine may still take: batch may hold at most
 * `batchShare` of the engine's `maxLoad`, so interactive lanes always find
 * headroom (and a short prefill queue) there; never more than its free slots.
 */
export function freeBatchSlots(engine: Engine, limits: SaturationLimits, batchShare: number, now = Date.now()): number {
  const free = freeSlots(engine, limits, now);
  if (engine.kind !== 'vllm' || batchShare >= 1) return free;
  return Math.min(free, Math.max(0, Math.floor(limits.maxLoad * batchShare) - engine.batchInFlight));
}

/** Slots the engine has in all when empty (for per-tenant fair shares). */
export function totalSlots(engine: Engine, limits: SaturationLimits, now = Date.now()): number {
  if (engine.kind !== 'vllm') return limits.maxLoad;
  return engine.metricsAgeMs(now) > limits.metricsStaleMs ? limits.staleMaxInFlight : limits.maxLoad;
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
