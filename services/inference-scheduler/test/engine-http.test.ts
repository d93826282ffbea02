import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineFailure, streamChatCompletion, type ChatCompletionRequest } from '../src/engines/chat-stream';
import { Engine } from '../src/engines/engine';
import { FakeVllm } from './fixtures/fake-vllm';

// The scheduler's HTTP client against a real HTTP server: connections are kept
// for the next call when a stream ends normally, and dropped (so the engine
// aborts the sequence) when the caller stops early or the engine stalls.
const request = (maxTokens: number): ChatCompletionRequest => ({
  model: 'fake-model',
  messages: [{ role: 'user', content: 'Say hello.' }],
  stream: true,
  stream_options: { include_usage: true },
  max_tokens: maxTokens,
});

async function waitFor(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('engine HTTP client', () => {
  const fake = new FakeVllm();
  let engine: Engine;

  beforeAll(async () => {
    await fake.start();
    engine = new Engine('fake', fake.url);
  });
  afterAll(() => fake.stop());

  it('reads streams to their end and serves sequential calls over one kept-alive connection', async () => {
    fake.behavior = { kind: 'stream', tokens: 4, usage: true };
    let before = fake.connections;
    for (let call = 0; call < 12; call++) {
      // The first two calls may each open a connection (the pool hands the first one back a tick after its response ends).
      if (call === 2) before = fake.connections;
      let text = '';
      let usage;
      for await (const event of streamChatCompletion(engine, request(4), { signal: new AbortController().signal, idleTimeoutMs: 5_000 })) {
        if (event.type === 'chunk') {
          text += event.text;
          usage ??= event.usage;
        }
      }
      expect(text.length).toBeGreaterThan(0);
      expect(usage).toMatchObject({ completionTokens: 4 });
    }
    expect(fake.connections - before).toBe(0);
    expect(fake.requests.slice(-10).every((received) => received.finished && !received.aborted)).toBe(true);
  });

  it('closes the connection when the consumer stops early, so the engine sees the abort', async () => {
    fake.behavior = { kind: 'stream', tokens: 1000, delayMs: 10, usage: false };
    let chunks = 0;
    for await (const event of streamChatCompletion(engine, request(1000), { signal: new AbortController().signal, idleTimeoutMs: 5_000, requestId: 'early-stop' })) {
      if (event.type === 'chunk' && ++chunks === 3) break;
    }
    const sent = fake.requests.find((received) => received.headers['x-request-id'] === 'early-stop')!;
    await waitFor('the engine to see the client leave', () => sent.aborted);
    expect(sent.finished).toBe(false);
  });

  it("closes the connection when the caller's signal fires before the first chunk", async () => {
    fake.behavior = { kind: 'hang' };
    const caller = new AbortController();
    const call = (async () => {
      for await (const event of streamChatCompletion(engine, request(5), { signal: caller.signal, idleTimeoutMs: 10_000, requestId: 'caller-abort' })) void event;
    })();
    await waitFor('the request to reach the engine', () => fake.requests.some((received) => received.headers['x-request-id'] === 'caller-abort'));
    caller.abort('client left');
    await expect(call).rejects.toMatchObject({ reason: 'client left' });
    const sent = fake.requests.find((received) => received.headers['x-request-id'] === 'caller-abort')!;
    await waitFor('the engine to see the client leave', () => sent.aborted);
  });

  it('reports a silent engine as stalled after the idle timeout, and answers error statuses with their body', async () => {
    fake.behavior = { kind: 'hang' };
    const stalled = streamChatCompletion(engine, request(5), { signal: new AbortController().signal, idleTimeoutMs: 150 }).next();
    await expect(stalled).rejects.toSatisfy((error) => error instanceof EngineFailure && error.kind === 'stalled');

    fake.behavior = { kind: 'status', status: 400, body: JSON.stringify({ object: 'error', message: 'max_tokens is too large', type: 'BadRequestError', code: 400 }) };
    const refused = streamChatCompletion(engine, request(5), { signal: new AbortController().signal, idleTimeoutMs: 5_000 }).next();
    await expect(refused).rejects.toSatisfy(
      (error) => error instanceof EngineFailure && error.kind === 'http' && error.options.status === 400 && error.options.engineMessage === 'max_tokens is too large' && !error.retryable,
    );
  });
});
