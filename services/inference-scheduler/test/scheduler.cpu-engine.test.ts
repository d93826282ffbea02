import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { inference } from '@ai-platform/contracts';
import { events } from '@ai-platform/contracts';
import { GrpcStatus, type RunningService } from '@ai-platform/platform';
import { costMicros, DEFAULT_PRICES } from '@ai-platform/pricing';
import type { SchedulerConfig } from '../src/config';
import { EnginePool } from '../src/engines/engine-pool';
import { retries } from '../src/metrics';
import { buildCpuEngine, cpuEngineAvailable, CpuEngineProcess } from './fixtures/cpu-engine';
import { FakeVllm } from './fixtures/fake-vllm';
import { collect, deadPort, grpcFailure, ids, requireInfra, schedulerClient, startScheduler, UsageCollector, waitFor, type InferenceClient } from './fixtures/harness';

// The scheduler in front of two real cpu-engine processes (Gemma 3 270M on
// CPU behind vLLM's HTTP API), plus an engine on a dead port and a fake engine
// that breaks mid-stream, with real Postgres and Kafka.
const availability = cpuEngineAvailable();

// Served under the priced model id so that costs are checked against the price table.
const price = DEFAULT_PRICES[0]!;
const MODEL = price.model;
const BROKEN_MODEL = 'breaks-after-first-token';

describe('inference-scheduler with two real cpu-engines', () => {
  const engineEnv = { MODEL_NAME: MODEL, THREADS: '1', PARALLEL_SEQUENCES: '2' };
  const engineA = new CpuEngineProcess(engineEnv);
  const engineB = new CpuEngineProcess(engineEnv);
  const broken = new FakeVllm(BROKEN_MODEL);
  let dead: number;
  let service: RunningService<SchedulerConfig>;
  let client: InferenceClient;
  let usage: UsageCollector;

  beforeAll(async () => {
    // A missing model or engine fails these tests; it never silently skips them.
    if (!availability.ok) throw new Error(`cpu-engine integration tests cannot run: ${availability.why}`);
    const infra = requireInfra();
    buildCpuEngine();
    broken.behavior = { kind: 'fail-after', after: 2, how: 'destroy' };
    dead = await deadPort();
    await Promise.all([engineA.start(), engineB.start(), broken.start()]);
    usage = await new UsageCollector(infra.kafkaBrokers).start();
    service = await startScheduler({
      ENGINES: [engineA.url, engineB.url, `http://127.0.0.1:${dead}`, broken.url].join(','),
      DATABASE_URL: infra.databaseUrl,
      KAFKA_BROKERS: infra.kafkaBrokers,
      // Only the first poll matters here: an engine that dies must be noticed
      // by the request path itself (connection refused, retry elsewhere).
      ENGINE_POLL_INTERVAL_MS: '60000',
      ENGINE_REQUEST_TIMEOUT_MS: '60000',
    });
    client = schedulerClient(service);
  });

  afterAll(async () => {
    client?.close();
    await service?.shutdown('test done');
    await usage?.stop();
    await Promise.all([engineA.stop(), engineB.stop(), broken.stop()]);
  });

  const ask = (content: string) => [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content },
  ];

  it('streams real text, a completion with the engine usage, and one COMPLETED usage event', async () => {
    const who = ids('real');
    const responses = await collect(client.generate({ model: MODEL, messages: ask('What is the capital of France?'), sampling: { maxTokens: 24, temperature: 0 }, reservationId: 'res-real' }, { context: who }));
    const text = responses.flatMap((r) => (r.event.case === 'delta' ? [r.event.value.text] : [])).join('');
    expect(text.trim().length).toBeGreaterThan(0);
    const completion = responses.at(-1)!.event.value as inference.Completion;
    expect(responses.at(-1)!.event.case).toBe('completion');
    expect(['stop', 'length']).toContain(completion.finishReason);
    expect([engineA.id, engineB.id]).toContain(completion.engineId);
    expect(completion.usage!.inputTokens).toBeGreaterThan(5);
    expect(completion.usage!.outputTokens).toBeGreaterThan(0);
    expect(completion.usage!.outputTokens).toBeLessThanOrEqual(24);

    const { event, key } = await usage.eventFor(who.requestId);
    expect(key).toBe(who.tenantId);
    expect(event).toMatchObject({
      status: events.UsageStatus.COMPLETED,
      model: MODEL,
      engineId: completion.engineId,
      reservationId: 'res-real',
      inputTokens: completion.usage!.inputTokens,
      cachedInputTokens: completion.usage!.cachedInputTokens,
      outputTokens: completion.usage!.outputTokens,
    });
    expect(event.costMicros).toBe(BigInt(costMicros(price, { inputTokens: event.inputTokens, cachedInputTokens: event.cachedInputTokens, outputTokens: event.outputTokens })));
    expect(event.costMicros).toBeGreaterThan(0n);
  });

  it('lists the model with its context length and both ready engines', async () => {
    const { models } = await client.listModels({});
    const model = models.find((m) => m.id === MODEL);
    expect(model).toMatchObject({ readyEngines: 2 });
    expect(model!.contextLength).toBeGreaterThan(0);
    expect(service.app.get(EnginePool).engines.find((engine) => engine.id === `127.0.0.1:${dead}`)!.healthy).toBe(false);
  });

  it('spreads concurrent calls over both engines', async () => {
    const results = await Promise.all(
      Array.from({ length: 4 }, () => collect(client.generate({ model: MODEL, messages: ask('Name a color.'), sampling: { maxTokens: 8 } }, { context: ids('spread') }))),
    );
    const engines = new Set(results.map((responses) => (responses.at(-1)!.event.value as inference.Completion).engineId));
    expect(engines).toEqual(new Set([engineA.id, engineB.id]));
  });

  it('aborts the engine request when the caller cancels mid-stream, and meters an ABORTED call with its tokens', async () => {
    const who = ids('real-cancel');
    const controller = new AbortController();
    let deltas = 0;
    await grpcFailure(async () => {
      const stream = client.generate({ model: MODEL, messages: ask('Write a very long story about a dragon and a knight.'), sampling: { maxTokens: 2000, temperature: 0.8, seed: 1n } }, { context: who, signal: controller.signal });
      for await (const response of stream) {
        if (response.event.case === 'delta' && ++deltas === 3) {
          // While the call is open, the engine runs it.
          expect((await engineA.activeRequests()) + (await engineB.activeRequests())).toBe(1);
          controller.abort();
        }
      }
    });
    expect(deltas).toBeGreaterThanOrEqual(3);
    await waitFor('engines to drop the aborted request', async () => (await engineA.activeRequests()) + (await engineB.activeRequests()) === 0, 10_000);
    const { event } = await usage.eventFor(who.requestId);
    expect(event.status).toBe(events.UsageStatus.ABORTED);
    expect(event.outputTokens).toBeGreaterThanOrEqual(3);
    expect(event.outputTokens).toBeLessThan(2000);
    expect(event.inputTokens).toBeGreaterThan(0);
    expect(event.costMicros).toBeGreaterThan(0n);
  });

  it("answers INVALID_ARGUMENT with the engine's message for a prompt beyond the context, and meters a zero-cost failure", async () => {
    const who = ids('too-long');
    const failure = await grpcFailure(() => collect(client.generate({ model: MODEL, messages: ask('word '.repeat(6_000)), sampling: { maxTokens: 16 } }, { context: who })));
    expect(failure.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(failure.details).toMatch(/context length/i);
    const { event } = await usage.eventFor(who.requestId);
    expect(event).toMatchObject({ status: events.UsageStatus.FAILED, outputTokens: 0, costMicros: 0n });
  });

  it('answers NOT_FOUND for an unknown model and meters nothing', async () => {
    const who = ids('real-unknown');
    const failure = await grpcFailure(() => collect(client.generate({ model: 'gpt-9', messages: ask('hi') }, { context: who })));
    expect(failure.code).toBe(GrpcStatus.NOT_FOUND);
    expect(failure.details).toContain(MODEL);
    const sentinel = { ...ids('real-sentinel'), tenantId: who.tenantId };
    await collect(client.generate({ model: MODEL, messages: ask('hi'), sampling: { maxTokens: 4 } }, { context: sentinel }));
    await usage.eventFor(sentinel.requestId);
    expect(usage.forRequest(who.requestId)).toHaveLength(0);
  });

  it('ends the stream with a clean error when an engine breaks after the first token, and meters the tokens produced', async () => {
    const who = ids('broken');
    const deltas: string[] = [];
    const failure = await grpcFailure(async () => {
      for await (const response of client.generate({ model: BROKEN_MODEL, messages: ask('hi') }, { context: who })) if (response.event.case === 'delta') deltas.push(response.event.value.text);
    });
    expect(deltas).toHaveLength(2);
    expect(failure.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(failure.details).toContain('failed after 2 tokens');
    const { event } = await usage.eventFor(who.requestId);
    expect(event).toMatchObject({ status: events.UsageStatus.FAILED, model: BROKEN_MODEL, engineId: broken.url.replace('http://', ''), outputTokens: 2 });
    expect(event.inputTokens).toBeGreaterThan(0);
  });

  it('keeps serving on the other engine when one engine dies between polls', async () => {
    const connectRetries = async () => (await retries.get()).values.find((value) => value.labels.reason === 'connect' && value.labels.model === MODEL)?.value ?? 0;
    const retriesBefore = await connectRetries();
    await engineB.stop('SIGKILL');
    // Both still look healthy: round robin sends one of the next two calls to the dead one.
    for (let i = 0; i < 4; i++) {
      const who = ids('failover');
      const responses = await collect(client.generate({ model: MODEL, messages: ask('Say hello.'), sampling: { maxTokens: 6 } }, { context: who }));
      const completion = responses.at(-1)!.event.value as inference.Completion;
      expect(completion.engineId).toBe(engineA.id);
      const { event } = await usage.eventFor(who.requestId);
      expect(event).toMatchObject({ status: events.UsageStatus.COMPLETED, engineId: engineA.id });
    }
    expect(await connectRetries()).toBe(retriesBefore + 1);
    expect((await client.listModels({})).models.find((m) => m.id === MODEL)?.readyEngines).toBe(1);
  });
});
