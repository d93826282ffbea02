/**
 * Completions per second over a sliding window: how fast slots free up, which
 * predicts how long a newly queued request will wait.
 */
export class ThroughputMeter {
  private readonly times: number[] = [];

  constructor(private readonly windowMs: number) {}

  record(now = Date.now()): void {
    this.times.push(now);
    this.trim(now);
  }

  perSecond(now = Date.now()): number {
    this.trim(now);
    if (this.times.length < 2) return 0;
    // Over the span actually observed (a quiet start does not dilute the rate), at least one second.
    const span = Math.max(1_000, now - this.times[0]!);
    return (this.times.length / span) * 1000;
  }

  private trim(now: number) {
    let drop = 0;
    while (drop < this.times.length && this.times[drop]! < now - this.windowMs) drop++;
    if (drop > 0) this.times.splice(0, drop);
  }
}
