/**
 * A per-engine circuit breaker over Generate attempts. Health polls catch dead
 * engines; the breaker catches engines that answer polls but fail or time out
 * real requests. `failureThreshold` failures in a row open it: the engine gets
 * no traffic for `openMs`, then one probe request (half-open) decides whether it
 * closes again or stays open for another (doubled, capped) period.
 */
export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerOptions {
  failureThreshold: number;
  openMs: number;
  maxOpenMs: number;
}

export const DEFAULT_BREAKER_OPTIONS: BreakerOptions = { failureThreshold: 5, openMs: 5_000, maxOpenMs: 60_000 };

export class CircuitBreaker {
  private consecutiveFailures = 0;
  private openedAt = 0;
  private openFor = 0;
  private probing = false;
  private current: BreakerState = 'closed';

  constructor(private readonly options: BreakerOptions = DEFAULT_BREAKER_OPTIONS) {}

  get state(): BreakerState {
    return this.current;
  }

  get failures(): number {
    return this.consecutiveFailures;
  }

  /** Whether routing may send a request now; in half-open, only one probe at a time. */
  allows(now = Date.now()): boolean {
    if (this.current === 'closed') return true;
    if (this.current === 'open' && now - this.openedAt >= this.openFor) {
      this.current = 'half_open';
      this.probing = false;
    }
    return this.current === 'half_open' && !this.probing;
  }

  /** Called when an attempt is sent to the engine (marks the half-open probe as taken). */
  onAttempt(): void {
    if (this.current === 'half_open') this.probing = true;
  }

  /** Returns true when this success closed an open/half-open breaker. */
  onSuccess(): boolean {
    const wasTripped = this.current !== 'closed';
    this.consecutiveFailures = 0;
    this.current = 'closed';
    this.openFor = 0;
    this.probing = false;
    return wasTripped;
  }

  /** Returns true when this failure opened the breaker. */
  onFailure(now = Date.now()): boolean {
    this.consecutiveFailures++;
    if (this.current === 'half_open') {
      this.trip(now, Math.min(this.options.maxOpenMs, Math.max(this.options.openMs, this.openFor * 2)));
      return true;
    }
    if (this.current === 'closed' && this.consecutiveFailures >= this.options.failureThreshold) {
      this.trip(now, this.options.openMs);
      return true;
    }
    return false;
  }

  /** A probe that ended without a verdict (cancelled by the caller) frees the probe slot. */
  onInconclusive(): void {
    this.probing = false;
  }

  private trip(now: number, openFor: number) {
    this.current = 'open';
    this.openedAt = now;
    this.openFor = openFor;
    this.probing = false;
  }
}
