import type { MessageInitShape } from '@bufbuild/protobuf';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { inference } from '@ai-platform/contracts';
import { events, EventTypes } from '@ai-platform/contracts';
import { createPool, GrpcStatus, type Pool, type RunningService } from '@ai-platform/platform';
import { costMicros, DEFAULT_PRICES } from '@ai-platform/pricing';
import type { SchedulerConfig } from '../src/config';
import { EnginePool } from '../src/engines/engine-pool';
import { FlowController } from '../src/flow/flow-controller';
import { estimateInputTokens } from '../src/metering/token-estimate';
import { FakeVllm } from './fixtures/fake-vllm';
import { collect, deadPort, grpcFailure, ids, requireInfra, schedulerClient, startScheduler, UsageCollector, waitFor, type InferenceClient } from './fixtures/harness';

// The scheduler against two fake vLLM servers (a test fixture speaking vLLM's
// HTTP API), with real Postgres (outbox) and Kafka (usage events).
// A model with a list price, so costs are checked against the price table.
const price = DEFAULT_PRICES[0]!;
const MODEL = price.model;
const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Count.' }];

describe('inference-scheduler with fake engines', () => {
  const infra = requireInfra();
  const a = new FakeVllm(MODEL, 2048);
  const b = new FakeVllm(MODEL, 4096);
  let dead: number;
  let service: RunningService<SchedulerConfig>;
  let client: InferenceClient;
  let usage: UsageCollector;
  let db: Pool;

  beforeAll(async () => {
    await Promise.all([a.start(), b.start()]);
    dead = await deadPort();
    usage = await new UsageCollector(infra.kafkaBrokers).start();
    service = await startScheduler({
      ENGINES: `${a.url},${b.url},http://127.0.0.1:${dead}`,
      DATABASE_URL: infra.databaseUrl,
      KAFKA_BROKERS: infra.kafkaBrokers,
      ENGINE_POLL_INTERVAL_MS: '200',
      ENGINE_REQUEST_TIMEOUT_MS: '1000',
      ENGINE_POLL_TIMEOUT_MS: '300',
      RETRY_BACKOFF_BASE_MS: '20',
      // These cases fail engines on purpose many times over; breakers have their own tests.
      BREAKER_FAILURE_THRESHOLD: '1000',
    });
    client = schedulerClient(service);
    db = createPool(infra.databaseUrl, { applicationName: 'scheduler-test' });
  });

  afterAll(async () => {
    client?.close();
    await service?.shutdown('test done');
    await usage?.stop();
    await db?.end();
    await Promise.all([a.stop(), b.stop()]);
  });

  afterEach(async () => {
    a.behavior = b.behavior = { kind: 'stream' };
    a.healthy = b.healthy = true;
    a.healthDelayMs = b.healthDelayMs = 0;
    a.metricsText = b.metricsText = undefined;
    // No leaked in-flight state after any case: in-flight counts, queues, reserved admission slots.
    const pool = service.app.get(EnginePool);
    await waitFor('in-flight counts to drop to zero', () => pool.engines.every((engine) => engine.inFlight === 0), 10_000);
    const flow = service.app.get(FlowController);
    expect(flow.depth()).toBe(0);
    expect(flow.reservedSlots()).toBe(0);
    await pool.pollAll();
  });

  type GenerateInit = Exclude<MessageInitShape<typeof inference.GenerateRequestSchema>, inference.GenerateRequest>;
  const generate = (who: ReturnType<typeof ids>, request: Partial<GenerateInit> = {}, signal?: AbortSignal) =>
    client.generate({ model: MODEL, messages, sampling: { maxTokens: 5 }, ...request }, { context: who, signal });

  it('streams deltas then a completion, forwards the request to the engine and meters it once', async () => {
    const who = ids('ok');
    const before = a.requests.length + b.requests.length;
    const responses = await collect(generate(who, { sampling: { maxTokens: 5, temperature: 0.2, topP: 0.9, stop: ['END'], seed: 7n }, reservationId: 'res-1', conversationId: 'conv-1', apiKeyId: 'key-1' }));
    const deltas = responses.filter((r) => r.event.case === 'delta').map((r) => (r.event.value as inference.TokenDelta).text);
    expect(deltas).toEqual(['tok0 ', 'tok1 ', 'tok2 ', 'tok3 ', 'tok4 ']);
    const last = responses.at(-1)!;
    expect(last.event.case).toBe('completion');
    const completion = last.event.value as inference.Completion;
    expect(completion.finishReason).toBe('length');
    expect(completion.usage).toMatchObject({ inputTokens: 7, outputTokens: 5 });
    expect([...[a, b].map((fake) => new URL(fake.url).host)]).toContain(completion.engineId);

    const sent = [...a.requests, ...b.requests].slice(before).find((r) => r.headers['x-request-id'] === who.requestId)!;
    expect(sent.body).toEqual({
      model: MODEL,
      messages,
      stream: true,
      stream_options: { include_usage: true, continuous_usage_stats: true },
      max_tokens: 5,
      temperature: 0.2,
      top_p: 0.9,
      stop: ['END'],
      seed: 7,
    });

    const { event, key, headers } = await usage.eventFor(who.requestId);
    expect(key).toBe(who.tenantId);
    expect(headers.ce_id).toBe(event.eventId);
    expect(headers.ce_type).toBe(EventTypes.usageRecorded);
    expect(headers.ce_source).toBe('inference-scheduler');
    expect(event).toMatchObject({
      tenantId: who.tenantId,
      userId: who.userId,
      apiKeyId: 'key-1',
      reservationId: 'res-1',
      conversationId: 'conv-1',
      model: MODEL,
      engineId: completion.engineId,
      inputTokens: 7,
      outputTokens: 5,
      status: events.UsageStatus.COMPLETED,
      priority: 'interactive_standard',
    });
    expect(event.costMicros).toBe(BigInt(costMicros(price, { inputTokens: 7, outputTokens: 5 })));
    expect(event.startedAt && event.finishedAt).toBeTruthy();
    expect(usage.forRequest(who.requestId)).toHaveLength(1);
  });

  it('lists the models of ready engines with their context length and engine count', async () => {
    const { models } = await client.listModels({});
    expect(models.map((m) => ({ id: m.id, contextLength: m.contextLength, readyEngines: m.readyEngines }))).toEqual([{ id: MODEL, contextLength: 2048, readyEngines: 2 }]);
  });

  it('never routes to the engine on a dead port and stays ready', async () => {
    const pool = service.app.get(EnginePool);
    expect(pool.engines.find((engine) => engine.id.endsWith(`:${dead}`))!.healthy).toBe(false);
    const ready = await fetch(`${service.httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    const results = await Promise.all(Array.from({ length: 6 }, () => collect(generate(ids('spread')))));
    expect(results.every((r) => r.at(-1)?.event.case === 'completion')).toBe(true);
  });

  it('spreads concurrent calls over both engines', async () => {
    a.behavior = b.behavior = { kind: 'stream', tokens: 5, delayMs: 30 };
    const beforeA = a.requests.length;
    const beforeB = b.requests.length;
    await Promise.all(Array.from({ length: 8 }, () => collect(generate(ids('spread')))));
    // 4 and 4 unless a metrics scrape lands between the picks.
    expect(a.requests.length - beforeA).toBeGreaterThanOrEqual(3);
    expect(b.requests.length - beforeB).toBeGreaterThanOrEqual(3);
  });

  it('answers NOT_FOUND listing the available models for an unknown model, and meters nothing', async () => {
    const who = ids('unknown');
    const before = a.requests.length + b.requests.length;
    const failure = await grpcFailure(() => collect(generate(who, { model: 'no-such-model' })));
    expect(failure.code).toBe(GrpcStatus.NOT_FOUND);
    expect(failure.details).toContain(MODEL);
    expect(a.requests.length + b.requests.length).toBe(before);
    // A later call of the same tenant lands on the same partition after it: once its event is there, none can follow for the first.
    const sentinel = { ...ids('sentinel'), tenantId: who.tenantId };
    await collect(generate(sentinel));
    await usage.eventFor(sentinel.requestId);
    expect(usage.forRequest(who.requestId)).toHaveLength(0);
    const { rows } = await db.query(`SELECT count(*)::int AS n FROM inference.outbox WHERE event->>'data' LIKE $1`, [`%${who.requestId}%`]);
    expect(rows[0].n).toBe(0);
  });

  it('rejects invalid input with INVALID_ARGUMENT before any engine sees it', async () => {
    const before = a.requests.length + b.requests.length;
    const noTenant = await grpcFailure(() => collect(client.generate({ model: MODEL, messages }, { context: { requestId: 'x' } })));
    expect(noTenant.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(noTenant.details).toContain('x-tenant-id');
    const badRole = await grpcFailure(() => collect(generate(ids('invalid'), { messages: [{ role: 'robot', content: 'x' }] })));
    expect(badRole.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    const tooMany = await grpcFailure(() => collect(generate(ids('invalid'), { sampling: { maxTokens: 100_000 } })));
    expect(tooMany.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(tooMany.details).toContain('context length');
    expect(a.requests.length + b.requests.length).toBe(before);
  });

  it('refuses a prompt that cannot fit the context with INVALID_ARGUMENT before any engine sees it', async () => {
    const before = a.requests.length + b.requests.length;
    const failure = await grpcFailure(() => collect(generate(ids('too-long'), { messages: [{ role: 'user', content: 'word '.repeat(8 * 4096) }] })));
    expect(failure.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(failure.details).toMatch(/prompt is too long/);
    expect(a.requests.length + b.requests.length).toBe(before);
  });

  it("maps an engine 4xx to INVALID_ARGUMENT with the engine's message, without retrying", async () => {
    const body = JSON.stringify({ object: 'error', message: "This model's maximum context length is 2048 tokens.", type: 'BadRequestError', code: 400 });
    a.behavior = b.behavior = { kind: 'status', status: 400, body };
    const who = ids('4xx');
    const before = a.requests.length + b.requests.length;
    const failure = await grpcFailure(() => collect(generate(who)));
    expect(failure.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(failure.details).toContain('maximum context length is 2048');
    expect(a.requests.length + b.requests.length - before).toBe(1);
    const { event } = await usage.eventFor(who.requestId);
    expect(event).toMatchObject({ status: events.UsageStatus.FAILED, inputTokens: 0, outputTokens: 0, costMicros: 0n });
  });

  it.each([
    ['a 500', { kind: 'status', status: 500, body: '{"error":{"message":"CUDA error"}}' }],
    ['an invalid first chunk', { kind: 'garbage' }],
    ['a stalled engine', { kind: 'hang' }],
    ['a connection cut before the first token', { kind: 'fail-after', after: 0, how: 'destroy' }],
  ] as const)('retries %s before the first token on the other engine', async (_name, behavior) => {
    a.behavior = behavior;
    b.behavior = { kind: 'stream' };
    const before = a.requests.length;
    for (let i = 0; i < 2; i++) {
      const who = ids('retry');
      const responses = await collect(generate(who));
      const completion = responses.at(-1)!.event.value as inference.Completion;
      expect(completion.engineId).toBe(new URL(b.url).host);
      const { event } = await usage.eventFor(who.requestId);
      expect(event).toMatchObject({ status: events.UsageStatus.COMPLETED, engineId: new URL(b.url).host, outputTokens: 5 });
      expect(usage.forRequest(who.requestId)).toHaveLength(1);
    }
    expect(a.requests.length).toBeGreaterThan(before);
  });

  it('gives up with UNAVAILABLE after the capped retries and meters a zero-cost failure', async () => {
    a.behavior = b.behavior = { kind: 'status', status: 503, body: 'overloaded' };
    const who = ids('exhausted');
    const failure = await grpcFailure(() => collect(generate(who)));
    expect(failure.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(failure.details).toMatch(/503|no healthy engine/);
    const { event } = await usage.eventFor(who.requestId);
    expect(event).toMatchObject({ status: events.UsageStatus.FAILED, outputTokens: 0, costMicros: 0n });
  });

  it.each(['error-chunk', 'destroy'] as const)('ends the stream with a clean error when the engine fails after the first token (%s) and meters the tokens produced', async (how) => {
    a.behavior = b.behavior = { kind: 'fail-after', after: 3, how };
    const who = ids('midstream');
    const deltas: string[] = [];
    const failure = await grpcFailure(async () => {
      for await (const response of generate(who)) if (response.event.case === 'delta') deltas.push(response.event.value.text);
    });
    expect(deltas).toHaveLength(3);
    expect(failure.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(failure.details).toMatch(/failed after 3 tokens/);
    const { event } = await usage.eventFor(who.requestId);
    expect(event).toMatchObject({ status: events.UsageStatus.FAILED, outputTokens: 3, inputTokens: estimateInputTokens(messages) });
    expect(event.costMicros).toBe(BigInt(costMicros(price, { inputTokens: estimateInputTokens(messages), outputTokens: 3 })));
  });

  it('aborts the engine request at once when the caller cancels, and meters an ABORTED call', async () => {
    a.behavior = b.behavior = { kind: 'stream', tokens: 1000, delayMs: 20, usage: false };
    const who = ids('cancel');
    const controller = new AbortController();
    let received = 0;
    await grpcFailure(async () => {
      for await (const response of generate(who, { sampling: { maxTokens: 1000 } }, controller.signal)) {
        if (response.event.case === 'delta' && ++received === 3) controller.abort();
      }
    });
    const sent = await waitFor('engine request', () => [...a.requests, ...b.requests].find((r) => r.headers['x-request-id'] === who.requestId));
    await waitFor('engine to see the abort', () => sent.aborted, 5_000);
    expect(sent.finished).toBe(false);
    const { event } = await usage.eventFor(who.requestId);
    expect(event.status).toBe(events.UsageStatus.ABORTED);
    expect(event.outputTokens).toBeGreaterThanOrEqual(3);
    expect(event.outputTokens).toBeLessThan(1000);
    expect(event.inputTokens).toBe(estimateInputTokens(messages));
  });

  it('meters an aborted call from the running usage when the engine sends it in every chunk', async () => {
    a.behavior = b.behavior = { kind: 'stream', tokens: 1000, delayMs: 20, continuousUsage: true, usage: false };
    const who = ids('cancel-continuous');
    let received = 0;
    const stream = generate(who, { sampling: { maxTokens: 1000 } });
    for await (const response of stream) if (response.event.case === 'delta' && ++received === 4) break;
    const { event } = await usage.eventFor(who.requestId);
    expect(event).toMatchObject({ status: events.UsageStatus.ABORTED, inputTokens: 7 });
    expect(event.outputTokens).toBeGreaterThanOrEqual(4);
  });

  it('meters a call cut by its deadline as ABORTED', async () => {
    a.behavior = b.behavior = { kind: 'stream', tokens: 1000, delayMs: 20 };
    const who = ids('deadline');
    const failure = await grpcFailure(() => collect(client.generate({ model: MODEL, messages, sampling: { maxTokens: 1000 } }, { context: who, timeoutMs: 500 })));
    expect(failure.code).toBe(GrpcStatus.DEADLINE_EXCEEDED);
    const { event } = await usage.eventFor(who.requestId);
    expect(event.status).toBe(events.UsageStatus.ABORTED);
    expect(event.outputTokens).toBeGreaterThan(0);
  });

  it('keeps routing when an engine serves garbage metrics', async () => {
    a.metricsText = '\u0000<html>garbage{{{ 1 2 3\nvllm:num_requests_running{oops 9\n';
    await service.app.get(EnginePool).pollAll();
    const pool = service.app.get(EnginePool);
    expect(pool.engines.filter((engine) => engine.healthy)).toHaveLength(2);
    const beforeA = a.requests.length;
    for (let i = 0; i < 4; i++) await collect(generate(ids('garbage-metrics')));
    expect(a.requests.length - beforeA).toBeGreaterThanOrEqual(1);
  });

  it('prefers the engine others load less, from its scraped metrics', async () => {
    a.metricsText = 'vllm:num_requests_running 4\nvllm:num_requests_waiting 6\n';
    await service.app.get(EnginePool).pollAll();
    const beforeB = b.requests.length;
    for (let i = 0; i < 3; i++) await collect(generate(ids('least-load')));
    expect(b.requests.length - beforeB).toBe(3);
  });

  it('answers UNAVAILABLE and reports not ready when no engine is healthy', async () => {
    a.healthy = b.healthy = false;
    await service.app.get(EnginePool).pollAll();
    const ready = await fetch(`${service.httpUrl}/readyz`);
    expect(ready.status).toBe(503);
    const failure = await grpcFailure(() => collect(generate(ids('none'))));
    expect(failure.code).toBe(GrpcStatus.UNAVAILABLE);
    expect((await client.listModels({})).models).toEqual([]);
  });

  it('exposes its metrics', async () => {
    const text = await (await fetch(`${service.httpUrl}/metrics`)).text();
    for (const name of ['inference_requests_total', 'inference_time_to_first_token_seconds', 'inference_engine_inflight_requests', 'inference_retries_total', 'inference_usage_events_total', 'inference_engine_healthy']) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(new RegExp(`inference_requests_total\\{model="${MODEL}",engine="127\\.0\\.0\\.1:\\d+",outcome="completed"\\} [1-9]`));
  });
});
