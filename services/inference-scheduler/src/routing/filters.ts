import type { Engine } from '../engines/engine';
import { saturationReason, type SaturationLimits } from '../flow/saturation';
import type { EngineFilter } from './pipeline';

/** Drops engines whose circuit breaker is open (a half-open one lets its single probe through). */
export class BreakerFilter implements EngineFilter {
  readonly name = 'breaker';
  filter(candidates: readonly Engine[], now: number): Engine[] {
    return candidates.filter((engine) => engine.breaker.allows(now));
  }
}

/**
 * Drops full engines (load, engine queue, KV cache, stale metrics). When all
 * are full the pipeline ignores the filter: admission control has already
 * decided that this request goes now, so it goes to the best of the full ones.
 */
export class SaturationFilter implements EngineFilter {
  readonly name = 'saturation';
  constructor(private readonly limits: SaturationLimits) {}
  filter(candidates: readonly Engine[], now: number): Engine[] {
    return candidates.filter((engine) => saturationReason(engine, this.limits, now) === undefined);
  }
}
