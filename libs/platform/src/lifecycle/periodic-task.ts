import type { Logger } from 'pino';

/**
 * Background work that runs every interval, never twice at once. A failed pass
 * is logged and counts as `onFailure`; the next interval tries again. A caller
 * asking for a pass while one runs joins that pass.
 */
export class PeriodicTask<T> {
  private timer?: NodeJS.Timeout;
  private running?: Promise<T>;

  constructor(
    private readonly name: string,
    private readonly pass: () => Promise<T>,
    private readonly logger: Logger,
    private readonly onFailure: T,
  ) {}

  start(intervalMs: number): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.runOnce(), intervalMs);
    this.timer.unref();
  }

  runOnce(): Promise<T> {
    this.running ??= this.pass()
      .catch((error) => {
        this.logger.warn({ err: error, task: this.name }, `${this.name} failed; retrying next interval`);
        return this.onFailure;
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
