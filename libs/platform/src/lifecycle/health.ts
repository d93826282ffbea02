/** A named readiness probe: resolves when the dependency answers, throws otherwise. */
export type ReadinessCheck = () => Promise<void>;

/**
 * Liveness says the process is alive; readiness says it can serve now. A pod
 * that is draining or whose dependencies fail leaves the Service's endpoints
 * but is not restarted.
 */
export class HealthRegistry {
  private readonly checks = new Map<string, ReadinessCheck>();
  private shuttingDown = false;

  register(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  markShuttingDown(): void {
    this.shuttingDown = true;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  async readiness(timeoutMs = 2_000): Promise<{ ready: boolean; checks: Record<string, string> }> {
    const results: Record<string, string> = {};
    if (this.shuttingDown) results.shutdown = 'draining';
    await Promise.all(
      [...this.checks].map(async ([name, check]) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            check(),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
            }),
          ]);
          results[name] = 'ok';
        } catch (error) {
          results[name] = (error as Error).message || 'failed';
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    const ready = !this.shuttingDown && Object.values(results).every((value) => value === 'ok');
    return { ready, checks: results };
  }
}
