import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineFailure, streamChatCompletion, type ChatCompletionRequest, type EngineUsage } from '../src/engines/chat-stream';
import { ProviderEngine, type ProviderSpec } from '../src/providers/provider-engine';
import { FakeProvider } from './fixtures/fake-providers';

// Contract tests of the provider wires. With OPENAI_API_KEY + OPENAI_BASE_URL
// (and OPENAI_MODEL), or ANTHROPIC_API_KEY + ANTHROPIC_BASE_URL (and
// ANTHROPIC_MODEL), the "real API" cases run against the real service; without
// them against fakes speaking the same wire format. Cases that need a fault the
// real API cannot be asked for (an error event mid-stream) run on the fake.
const targets = [
  { kind: 'openai' as const, keyEnv: 'OPENAI_API_KEY', baseEnv: 'OPENAI_BASE_URL', model: process.env.OPENAI_MODEL ?? 'gpt-4o-mini' },
  { kind: 'anthropic' as const, keyEnv: 'ANTHROPIC_API_KEY', baseEnv: 'ANTHROPIC_BASE_URL', model: process.env.ANTHROPIC_MODEL ?? 'claude-3-5-haiku-latest' },
];

const body = (maxTokens: number): ChatCompletionRequest => ({
  model: 'our-model',
  messages: [{ role: 'system', content: 'Answer in one short sentence.' }, { role: 'user', content: 'Say hello.' }],
  stream: true,
  stream_options: { include_usage: true, continuous_usage_stats: true },
  max_tokens: maxTokens,
  temperature: 0,
});

async function run(engine: ProviderEngine, request: ChatCompletionRequest) {
  let text = '';
  let usage: EngineUsage | undefined;
  let finishReason: string | undefined;
  for await (const event of streamChatCompletion(engine, request, { signal: new AbortController().signal, idleTimeoutMs: 30_000 })) {
    if (event.type !== 'chunk') continue;
    text += event.text;
    if (event.usage) usage = event.usage;
    if (event.finishReason) finishReason = event.finishReason;
  }
  return { text, usage, finishReason };
}

describe.each(targets)('$kind provider wire', ({ kind, keyEnv, baseEnv, model }) => {
  const real = Boolean(process.env[keyEnv] && process.env[baseEnv]);
  const fake = new FakeProvider(kind);
  const spec = (baseUrl: string, apiKeyEnv: string): ProviderSpec => ({ name: kind, kind, baseUrl, apiKeyEnv, models: { 'our-model': real ? model : `${kind}-fake-model` }, use: ['fallback'], overflowPriorities: [] });
  let target: ProviderEngine;
  let fakeEngine: ProviderEngine;

  beforeAll(async () => {
    await fake.start();
    fakeEngine = new ProviderEngine(spec(fake.baseUrl, 'KEY'), { KEY: fake.apiKey });
    target = real ? new ProviderEngine(spec(process.env[baseEnv]!, keyEnv)) : fakeEngine;
  });

  afterAll(() => fake.stop());

  it(`streams text and maps the usage to ours (${real ? 'real API' : 'fake'})`, async () => {
    const result = await run(target, body(16));
    expect(result.text.length).toBeGreaterThan(0);
    expect(result.usage?.promptTokens).toBeGreaterThan(0);
    expect(result.usage?.completionTokens).toBeGreaterThan(0);
    expect(result.usage!.cachedTokens).toBeLessThanOrEqual(result.usage!.promptTokens);
    expect(['stop', 'length']).toContain(result.finishReason);
    if (!real) {
      expect(result.text).toBe('Hello from the provider');
      const sent = fake.requests.at(-1)!;
      expect(sent.body.model).toBe(`${kind}-fake-model`);
      if (kind === 'anthropic') {
        expect(sent.body.system).toBe('Answer in one short sentence.');
        expect(sent.body.messages).toEqual([{ role: 'user', content: 'Say hello.' }]);
        expect(result.usage).toEqual({ promptTokens: 12, cachedTokens: 3, completionTokens: 4 });
      } else {
        expect(sent.body.stream_options).toEqual({ include_usage: true }); // no vLLM-only options sent to OpenAI
        expect(result.usage).toEqual({ promptTokens: 12, cachedTokens: 4, completionTokens: 4 });
      }
    }
  });

  it(`reports the length stop reason when max_tokens is hit (${real ? 'real API' : 'fake'})`, async () => {
    const result = await run(target, body(1));
    expect(result.finishReason).toBe('length');
  });

  it(`fails a wrong key as a non-retryable 4xx (${real ? 'real API' : 'fake'})`, async () => {
    const wrongKey = new ProviderEngine({ ...target.spec, apiKeyEnv: 'WRONG' }, { WRONG: 'not-a-key' });
    const error = await run(wrongKey, body(4)).then(() => undefined, (failure: unknown) => failure);
    expect(error).toBeInstanceOf(EngineFailure);
    expect((error as EngineFailure).options.status).toBe(401);
    expect((error as EngineFailure).retryable).toBe(false);
  });

  it('turns an error event mid-stream into a retryable stream failure (fake)', async () => {
    fake.mode = 'error-event';
    const error = await run(fakeEngine, body(16)).then(() => undefined, (failure: unknown) => failure);
    fake.mode = 'ok';
    expect(error).toBeInstanceOf(EngineFailure);
    expect((error as EngineFailure).kind).toBe('stream');
  });
});
