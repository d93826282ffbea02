import { describe, expect, it } from 'vitest';
import { DrainTracker, HealthRegistry } from '../src';

describe('DrainTracker', () => {
  it('waits for tracked streams to end before resolving', async () => {
    const drain = new DrainTracker();
    const done = drain.track(() => undefined);
    let resolved = false;
    const draining = drain.drain(10_000).then((result) => {
      resolved = true;
      return result;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(resolved).toBe(false);
    expect(drain.isDraining).toBe(true);
    done();
    expect(await draining).toEqual({ drained: 1, forced: 0 });
  });

  it('forces the streams still open when the grace period ends, and waits for their cleanup', async () => {
    const drain = new DrainTracker();
    let cleanedUp = false;
    const done = drain.track(() => {
      // The stream ends asynchronously, as one writing a final event does.
      setTimeout(() => {
        cleanedUp = true;
        done();
      }, 20);
    });
    expect(await drain.drain(10)).toEqual({ drained: 0, forced: 1 });
    expect(cleanedUp).toBe(true);
    expect(drain.size).toBe(0);
  });
});

describe('HealthRegistry', () => {
  it('is ready only when every check passes and not while shutting down', async () => {
    const health = new HealthRegistry();
    let up = true;
    health.register('db', async () => {
      if (!up) throw new Error('connection refused');
    });
    expect(await health.readiness()).toEqual({ ready: true, checks: { db: 'ok' } });
    up = false;
    expect(await health.readiness()).toEqual({ ready: false, checks: { db: 'connection refused' } });
    up = true;
    health.markShuttingDown();
    expect((await health.readiness()).ready).toBe(false);
  });

  it('bounds a hanging check by its timeout', async () => {
    const health = new HealthRegistry();
    health.register('hangs', () => new Promise(() => undefined));
    const result = await health.readiness(20);
    expect(result.ready).toBe(false);
    expect(result.checks.hangs).toMatch(/timed out/);
  });
});
