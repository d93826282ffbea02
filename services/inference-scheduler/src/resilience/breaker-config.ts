import type { SchedulerConfig } from '../config';
import type { BreakerOptions } from './circuit-breaker';

export function breakerOptions(config: SchedulerConfig): BreakerOptions {
  return { failureThreshold: config.BREAKER_FAILURE_THRESHOLD, openMs: config.BREAKER_OPEN_MS, maxOpenMs: config.BREAKER_MAX_OPEN_MS };
}
