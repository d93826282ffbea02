import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, HealthRegistry, parseConfig } from '@ai-platform/platform';
import { configSchema } from '../src/config';
import { EnginePool, parseModelList } from '../src/engines/engine-pool';
import { FakeVllm } from './fixtures/fake-vllm';
import { deadPort } from './fixtures/harness';

// The pool's polling against fake engines, driven by hand (no timer).
describe('EnginePool', () => {
  const a = new FakeVllm('m', 2048);
  const b = new FakeVllm('m', 4096);
  const other = new FakeVllm('other', 1024);
  let pool: EnginePool;
  let health: HealthRegistry;
  let dead: number;

  beforeAll(async () => {
    await Promise.all([a.start(), b.start(), other.start()]);
    dead = await deadPort();
    const config = parseConfig(configSchema, {
      ENGINES: `${a.url}, ${b.url}/ ,http://127.0.0.1:${dead},${other.url},${a.url}`,
      DATABASE_URL: 'postgres://unused',
      KAFKA_BROKERS: '127.0.0.1:1',
      ENGINE_POLL_TIMEOUT_MS: '200',
    });
    health = new HealthRegistry();
    pool = new EnginePool(config, createLogger('test', 'silent'), health);
  });

  afterAll(async () => {
    await Promise.all([a.stop(), b.stop(), other.stop()]);
  });

  const engineOf = (fake: FakeVllm) => pool.engines.find((engine) => engine.baseUrl === fake.url)!;

  it('lists each configured engine once, unhealthy until polled', async () => {
    expect(pool.engines).toHaveLength(4);
    expect(pool.engines.every((engine) => !engine.healthy)).toBe(true);
    expect((await health.readiness()).ready).toBe(false);
  });

  it('learns health, models and load from a poll', async () => {
    await pool.pollAll();
    expect(engineOf(a)).toMatchObject({ healthy: true, models: [{ id: 'm', maxModelLen: 2048 }], scraped: { running: 0, waiting: 0, kvCacheUsage: 0.1 } });
    expect(pool.engines.find((engine) => engine.id === `127.0.0.1:${dead}`)!.healthy).toBe(false);
    expect(pool.candidates('m').map((engine) => engine.baseUrl)).toEqual([a.url, b.url]);
    expect(pool.availableModels()).toEqual([
      { id: 'm', kind: 'chat', contextLength: 2048, readyEngines: 2 },
      { id: 'other', kind: 'chat', contextLength: 1024, readyEngines: 1 },
    ]);
    expect((await health.readiness()).ready).toBe(true);
  });

  it('keeps an engine with garbage metrics healthy, with unknown load', async () => {
    a.metricsText = '\u0000\u0001 this is not prometheus {{{';
    await pool.pollAll();
    expect(engineOf(a).healthy).toBe(true);
    expect(engineOf(a).scraped).toBeUndefined();
    a.metricsText = undefined;
  });

  it('takes an engine out when its health check fails, and back when it passes', async () => {
    b.healthy = false;
    await pool.pollAll();
    expect(engineOf(b).healthy).toBe(false);
    expect(pool.availableModels().find((model) => model.id === 'm')).toEqual({ id: 'm', kind: 'chat', contextLength: 2048, readyEngines: 1 });
    b.healthy = true;
    await pool.pollAll();
    expect(engineOf(b).healthy).toBe(true);
  });

  it('forgives one timed-out health poll but not two in a row', async () => {
    a.healthDelayMs = 500;
    await pool.pollAll();
    expect(engineOf(a).healthy).toBe(true);
    await pool.pollAll();
    expect(engineOf(a).healthy).toBe(false);
    a.healthDelayMs = 0;
    await pool.pollAll();
    expect(engineOf(a).healthy).toBe(true);
  });

  it('restores an engine marked failed by a request at its next good poll', async () => {
    pool.markFailed(engineOf(a), 'connection refused');
    expect(pool.candidates('m').map((engine) => engine.baseUrl)).toEqual([b.url]);
    await pool.pollAll();
    expect(pool.candidates('m')).toHaveLength(2);
  });

  it('counts in-flight requests per engine', () => {
    const release = pool.acquire(engineOf(b));
    expect(engineOf(b).inFlight).toBe(1);
    release();
    release();
    expect(engineOf(b).inFlight).toBe(0);
  });

  it('parses model lists leniently but refuses a body without data', () => {
    expect(parseModelList({ data: [{ id: 'x', max_model_len: 10 }, { id: 7 }, null, { id: 'y', max_model_len: 'big' }] })).toEqual([{ id: 'x', maxModelLen: 10 }, { id: 'y' }]);
    expect(parseModelList({ data: [{ id: 'e', max_model_len: 512, task: 'embed' }, { id: 'g', task: 'generate' }] })).toEqual([{ id: 'e', maxModelLen: 512, task: 'embed' }, { id: 'g' }]);
    expect(() => parseModelList({ models: [] })).toThrow(/data/);
    expect(() => parseModelList(null)).toThrow();
  });
});
