import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { inference } from '@ai-platform/contracts';
import type { RunningService } from '@ai-platform/platform';
import type { SchedulerConfig } from '../src/config';
import { EnginePool } from '../src/engines/engine-pool';
import { ProviderRegistry } from '../src/providers/provider-registry';
import { FakeProvider } from './fixtures/fake-providers';
import { FakeVllm } from './fixtures/fake-vllm';
import { collect, ids, requireInfra, schedulerClient, startScheduler, waitFor, type InferenceClient } from './fixtures/harness';

// Circuit breakers and provider fallback through the whole service: one fake
// vLLM engine that starts failing, and an OpenAI-compatible fake as fallback.
const MODEL = 'fallback-model';
const messages = [{ role: 'user', content: 'Hello?' }];

describe('inference-scheduler breakers and provider fallback', () => {
  const infra = requireInfra();
  const engine = new FakeVllm(MODEL, 4096);
  const provider = new FakeProvider('openai');
  let service: RunningService<SchedulerConfig>;
  let client: InferenceClient;

  beforeAll(async () => {
    await Promise.all([engine.start(), provider.start()]);
    process.env.FAKE_OPENAI_KEY = provider.apiKey;
    service = await startScheduler({
      ENGINES: engine.url,
      DATABASE_URL: infra.databaseUrl,
      KAFKA_BROKERS: infra.kafkaBrokers,
      ENGINE_POLL_INTERVAL_MS: '200',
      RETRY_BACKOFF_BASE_MS: '10',
      MAX_RETRIES_BEFORE_FIRST_TOKEN: '1',
      BREAKER_FAILURE_THRESHOLD: '2',
      BREAKER_OPEN_MS: '60000',
      PROVIDERS: JSON.stringify([{ name: 'openai', kind: 'openai', baseUrl: provider.baseUrl, apiKeyEnv: 'FAKE_OPENAI_KEY', models: { [MODEL]: 'gpt-fake' }, use: ['fallback'] }]),
    });
    client = schedulerClient(service);
  });

  afterAll(async () => {
    client?.close();
    await service?.shutdown('test done');
    await Promise.all([engine.stop(), provider.stop()]);
  });

  const generate = () => collect(client.generate({ model: MODEL, messages, sampling: { maxTokens: 4 } }, { context: ids('fallback') }));
  const completion = (responses: inference.GenerateResponse[]) => responses.at(-1)!.event.value as inference.Completion;

  it('falls back to the provider when the engine fails, opens the breaker after repeated failures, and meters provider usage', async () => {
    engine.behavior = { kind: 'status', status: 503, body: '{"error":{"message":"overloaded"}}' };
    const pool = service.app.get(EnginePool);
    const local = pool.engines[0]!;
    for (let i = 0; i < 2; i++) {
      const responses = await generate();
      // The engine failed before the first token; the fallback provider answered.
      expect(completion(responses).engineId).toBe('provider:openai');
      expect(completion(responses).usage).toMatchObject({ inputTokens: 12, cachedInputTokens: 4, outputTokens: 4 });
    }
    expect(local.breaker.state).toBe('open');
    const before = engine.requests.length;
    expect(completion(await generate()).engineId).toBe('provider:openai');
    expect(engine.requests.length).toBe(before); // open breaker: the engine was not even tried
    expect(provider.requests.at(-1)!.body.model).toBe('gpt-fake');
    expect(service.app.get(ProviderRegistry).engines[0]!.breaker.state).toBe('closed');
    await waitFor('no request in flight', () => local.inFlight === 0 && service.app.get(ProviderRegistry).engines[0]!.inFlight === 0);
  });
});
