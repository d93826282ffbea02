import { inFlightStreams } from '../metrics/metrics';

const FORCED_CLEANUP_MS = 3_000;

/**
 * Tracks in-flight streams so shutdown can wait for them. A stream registers an
 * abort callback; when the grace period runs out, the remaining ones are told
 * to end cleanly (a final error event) rather than being cut mid-frame.
 */
export class DrainTracker {
  private readonly active = new Map<number, () => void>();
  private nextId = 0;
  private waiters: Array<() => void> = [];
  private draining = false;

  get size(): number {
    return this.active.size;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Registers a stream; call the returned function when it ends. */
  track(onForcedEnd: () => void): () => void {
    const id = this.nextId++;
    this.active.set(id, onForcedEnd);
    inFlightStreams.inc();
    return () => {
      if (!this.active.delete(id)) return;
      inFlightStreams.dec();
      if (this.active.size === 0) this.flushWaiters();
    };
  }

  /** Resolves when every stream has ended or `graceMs` passed; then forces the rest. */
  async drain(graceMs: number): Promise<{ drained: number; forced: number }> {
    this.draining = true;
    const initial = this.active.size;
    if (initial > 0) await this.settle(graceMs);
    const forced = this.active.size;
    for (const end of [...this.active.values()]) end();
    // Forced streams still run their cleanup (a final event, a usage record);
    // give them a bounded moment before resources close underneath them.
    if (this.active.size > 0) await this.settle(FORCED_CLEANUP_MS);
    return { drained: initial - forced, forced };
  }

  private settle(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private flushWaiters() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }
}
