import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { events } from '@ai-platform/contracts';
import { GrpcStatus, type RunningService } from '@ai-platform/platform';
import { costMicros, DEFAULT_PRICES } from '@ai-platform/pricing';
import type { SchedulerConfig } from '../src/config';
import { EnginePool } from '../src/engines/engine-pool';
import { EmbeddingService } from '../src/generation/embedding.service';
import { FakeVllm } from './fixtures/fake-vllm';
import { grpcFailure, ids, requireInfra, schedulerClient, startScheduler, UsageCollector, waitFor, type InferenceClient } from './fixtures/harness';

// Embed against two fake vLLM servers, one of which serves the embedding model,
// with real Postgres (outbox) and Kafka (usage events).
const price = DEFAULT_PRICES.find((entry) => entry.embeddingMicrosPerMillion)!;
const EMBEDDING_MODEL = price.model;

describe('inference-scheduler Embed', () => {
  const infra = requireInfra();
  const chatOnly = new FakeVllm('chat-model');
  const embedder = new FakeVllm('other-chat-model');
  let service: RunningService<SchedulerConfig>;
  let client: InferenceClient;
  let usage: UsageCollector;

  beforeAll(async () => {
    embedder.embeddingModel = EMBEDDING_MODEL;
    await Promise.all([chatOnly.start(), embedder.start()]);
    usage = await new UsageCollector(infra.kafkaBrokers).start();
    service = await startScheduler({
      ENGINES: `${chatOnly.url},${embedder.url}`,
      DATABASE_URL: infra.databaseUrl,
      KAFKA_BROKERS: infra.kafkaBrokers,
      ENGINE_POLL_INTERVAL_MS: '200',
      ENGINE_REQUEST_TIMEOUT_MS: '1000',
    });
    client = schedulerClient(service);
    await waitFor('both engines healthy', () => service.app.get(EnginePool).engines.every((engine) => engine.healthy));
  });

  afterAll(async () => {
    client?.close();
    await service?.shutdown('test done');
    await usage?.stop();
    await Promise.all([chatOnly.stop(), embedder.stop()]);
  });

  afterEach(async () => {
    embedder.embedBehavior = { kind: 'ok' };
    await service.app.get(EnginePool).pollAll();
  });

  const embed = (who: ReturnType<typeof ids>, inputs: string[], model = EMBEDDING_MODEL) =>
    client.embed({ model, inputs, reservationId: 'res-e', apiKeyId: 'key-e' }, { context: who });

  /** Usage events of one tenant arrive in order: once a later call of `who` is metered, any event of an earlier one has arrived. */
  async function meterLaterCall(who: ReturnType<typeof ids>) {
    const later = { ...who, requestId: `${who.requestId}-later` };
    await embed(later, ['later']);
    await usage.eventFor(later.requestId);
  }

  async function expectNoUsage(requestId: string, who: ReturnType<typeof ids>) {
    await meterLaterCall(who);
    expect(usage.forRequest(requestId)).toEqual([]);
  }

  it('finds the engine that serves the model past one that answers 404, returns vectors in input order and meters the call once', async () => {
    const who = ids('embed');
    const result = await embed(who, ['one', 'three', 'fifteen chars..']);
    expect(result.embeddings.map((embedding) => embedding.values)).toEqual([[0, 3, 1], [1, 5, 1], [2, 15, 1]]);
    expect(result.tokens).toBe(3 + 5 + 15 + 6);
    expect(result.engineId).toBe(new URL(embedder.url).host);
    expect(embedder.embedRequests.at(-1)).toEqual({ model: EMBEDDING_MODEL, input: ['one', 'three', 'fifteen chars..'], encoding_format: 'float' });

    const { event, key } = await usage.eventFor(who.requestId);
    expect(key).toBe(who.tenantId);
    expect(event).toMatchObject({
      tenantId: who.tenantId, userId: who.userId, apiKeyId: 'key-e', reservationId: 'res-e', model: EMBEDDING_MODEL,
      embeddingTokens: 29, inputTokens: 0, outputTokens: 0, status: events.UsageStatus.COMPLETED,
      costMicros: BigInt(costMicros(price, { inputTokens: 0, outputTokens: 0, embeddingTokens: 29 })),
    });
    await meterLaterCall(who);
    expect(usage.forRequest(who.requestId)).toHaveLength(1);
  });

  it('lists an embedding model an engine marks as such, goes to that engine first and never routes Generate to it', async () => {
    embedder.listEmbeddingModel = true;
    try {
      await service.app.get(EnginePool).pollAll();
      const { models } = await client.listModels({});
      expect(models.map((model) => ({ id: model.id, kind: model.kind }))).toEqual(
        expect.arrayContaining([{ id: EMBEDDING_MODEL, kind: 'embedding' }, { id: 'chat-model', kind: 'chat' }, { id: 'other-chat-model', kind: 'chat' }]),
      );
      const probed = chatOnly.embedRequests.length;
      const who = ids('embed-listed');
      expect((await embed(who, ['direct'])).engineId).toBe(new URL(embedder.url).host);
      expect(chatOnly.embedRequests.length).toBe(probed);
      const generate = await grpcFailure(async () => {
        for await (const _ of client.generate({ model: EMBEDDING_MODEL, messages: [{ role: 'user', content: 'hi' }] }, { context: who })) void _;
      });
      expect(generate.code).toBe(GrpcStatus.NOT_FOUND);
    } finally {
      embedder.listEmbeddingModel = false;
    }
  });

  it('relays an engine refusal as INVALID_ARGUMENT and meters nothing', async () => {
    const who = ids('embed-refused');
    embedder.embedBehavior = { kind: 'status', status: 400, body: JSON.stringify({ error: { message: 'input[0] has 600 tokens; 512 is the most this embedding model reads' } }) };
    const failure = await grpcFailure(() => embed(who, ['too long']));
    expect(failure).toEqual({ code: GrpcStatus.INVALID_ARGUMENT, details: 'input[0] has 600 tokens; 512 is the most this embedding model reads' });
    embedder.embedBehavior = { kind: 'ok' };
    await expectNoUsage(who.requestId, who);
  });

  it('answers UNAVAILABLE when the serving engine fails, and meters the failed call once at zero tokens', async () => {
    const who = ids('embed-failed');
    embedder.embedBehavior = { kind: 'status', status: 500, body: '{"error":{"message":"out of memory"}}' };
    const failure = await grpcFailure(() => embed(who, ['x']));
    expect(failure.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(failure.details).toContain('out of memory');
    const { event } = await usage.eventFor(who.requestId);
    expect(event).toMatchObject({ status: events.UsageStatus.FAILED, embeddingTokens: 0, costMicros: 0n });
  });

  it('answers NOT_FOUND for a model no engine serves, and refuses bad calls before any engine', async () => {
    const who = ids('embed-missing');
    const before = chatOnly.embedRequests.length + embedder.embedRequests.length;
    expect((await grpcFailure(() => embed(who, ['x'], 'no-such-embedder'))).code).toBe(GrpcStatus.NOT_FOUND);
    const sent = chatOnly.embedRequests.length + embedder.embedRequests.length - before;
    expect(sent).toBe(2);
    expect((await grpcFailure(() => embed(who, []))).code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect((await grpcFailure(() => embed(who, ['ok', '']))).details).toContain('inputs[1]');
    expect((await grpcFailure(() => client.embed({ model: EMBEDDING_MODEL, inputs: ['x'] }, { context: { requestId: 'no-tenant' } }))).code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(chatOnly.embedRequests.length + embedder.embedRequests.length - before).toBe(2);
    await expectNoUsage(who.requestId, who);
  });

  it('remembers which engines do not serve a model for a bounded number of model names', async () => {
    const who = ids('embed-many');
    for (let i = 0; i < 300; i++) expect((await grpcFailure(() => embed(who, ['x'], `made-up-${i}`))).code).toBe(GrpcStatus.NOT_FOUND);
    const remembered = (service.app.get(EmbeddingService) as unknown as { notServing: Map<string, Set<string>> }).notServing;
    expect(remembered.size).toBeLessThanOrEqual(256);
    expect(remembered.has('made-up-299')).toBe(true);
    expect(remembered.has('made-up-0')).toBe(false);
  });
});
