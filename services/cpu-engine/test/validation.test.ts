import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '@ai-platform/platform';
import { metric, MODEL, postJson, scrape, startInProcess, json } from './support/engine';

let service: RunningService<unknown>;
let url: string;

beforeAll(async () => {
  service = await startInProcess({ PARALLEL_SEQUENCES: '2', CONTEXT_SIZE: '512' });
  url = service.httpUrl;
});

afterAll(async () => {
  await service?.shutdown('test end');
});

const user = [{ role: 'user', content: 'hi' }];
const longText = 'the quick brown fox jumps over the lazy dog '.repeat(80); // ~720 tokens > 512

type Case = [name: string, path: string, body: unknown, status: number, param: string | null, message: RegExp];

const cases: Case[] = [
  ['malformed JSON', 'chat/completions', '{"model":', 400, null, /JSON/],
  ['a JSON array body', 'chat/completions', '[1,2]', 400, null, /must be a JSON object/],
  ['a missing model', 'chat/completions', { messages: user }, 400, 'model', /model: is required/],
  ['missing messages', 'chat/completions', { model: MODEL }, 400, 'messages', /messages: must be an array/],
  ['empty messages', 'chat/completions', { model: MODEL, messages: [] }, 400, 'messages', /at least one message/],
  ['an unknown role', 'chat/completions', { model: MODEL, messages: [{ role: 'robot', content: 'x' }] }, 400, 'messages[0].role', /must be one of/],
  ['numeric content', 'chat/completions', { model: MODEL, messages: [{ role: 'user', content: 42 }] }, 400, 'messages[0].content', /must be a string or an array/],
  ['an image part', 'chat/completions', { model: MODEL, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 400, 'messages[0].content', /must be a string or an array/],
  ['negative max_tokens', 'chat/completions', { model: MODEL, messages: user, max_tokens: -5 }, 400, 'max_tokens', /at least 1/],
  ['fractional max_tokens', 'chat/completions', { model: MODEL, messages: user, max_tokens: 1.5 }, 400, 'max_tokens', /integer/],
  ['huge max_tokens', 'chat/completions', { model: MODEL, messages: user, max_tokens: 1_000_000 }, 400, 'max_tokens', /maximum context length is 512 tokens/],
  ['max_tokens as a string', 'chat/completions', { model: MODEL, messages: user, max_tokens: '10' }, 400, 'max_tokens', /must be a number/],
  ['temperature as a string', 'chat/completions', { model: MODEL, messages: user, temperature: 'hot' }, 400, 'temperature', /./],
  ['temperature out of range', 'chat/completions', { model: MODEL, messages: user, temperature: 7 }, 400, 'temperature', /./],
  ['top_p of 0', 'chat/completions', { model: MODEL, messages: user, top_p: 0 }, 400, 'top_p', /./],
  ['stream as a string', 'chat/completions', { model: MODEL, messages: user, stream: 'yes' }, 400, 'stream', /./],
  ['stop as a number', 'chat/completions', { model: MODEL, messages: user, stop: 3 }, 400, 'stop', /string or an array/],
  ['n greater than 1', 'chat/completions', { model: MODEL, messages: user, n: 2 }, 400, 'n', /only n=1/],
  ['tools', 'chat/completions', { model: MODEL, messages: user, tools: [{ type: 'function', function: { name: 'f' } }] }, 400, 'tools', /not supported/],
  ['negative presence_penalty', 'chat/completions', { model: MODEL, messages: user, presence_penalty: -1 }, 400, 'presence_penalty', /negative/],
  ['a prompt over the context', 'chat/completions', { model: MODEL, messages: [{ role: 'user', content: longText }] }, 400, 'messages', /maximum context length is 512 tokens\. However, your request has \d+ input tokens/],
  ['prompt + max_tokens over the context', 'chat/completions', { model: MODEL, messages: [{ role: 'user', content: longText.slice(0, 1200) }], max_tokens: 400 }, 400, 'max_tokens', /you requested \d+ tokens \(\d+ in the messages, 400 in the completion\)/],
  ['a missing prompt', 'completions', { model: MODEL }, 400, 'prompt', /must be a string/],
  ['a numeric prompt', 'completions', { model: MODEL, prompt: 7 }, 400, 'prompt', /must be a string/],
  ['two prompts', 'completions', { model: MODEL, prompt: ['a', 'b'] }, 400, 'prompt', /one prompt/],
  ['echo', 'completions', { model: MODEL, prompt: 'a', echo: true }, 400, 'echo', /not supported/],
  ['a completion prompt over the context', 'completions', { model: MODEL, prompt: longText }, 400, 'prompt', /maximum context length/],
];

describe('bad requests get a 4xx in the OpenAI error shape, never a 500', () => {
  it.each(cases)('%s', async (_name, path, body, status, param, message) => {
    const response = await postJson(`${url}/v1/${path}`, body);
    expect(response.status).toBe(status);
    const error = (await json(response)).error;
    expect(error).toEqual({ message: expect.any(String), type: 'invalid_request_error', code: expect.toBeOneOf([expect.any(String), null]), param });
    expect(error.message).toMatch(message);
  });

  it('answers an unknown model with 404 NotFoundError, like vLLM', async () => {
    for (const path of ['chat/completions', 'completions']) {
      const response = await postJson(`${url}/v1/${path}`, { model: 'llama-70b', messages: user, prompt: 'x' });
      expect(response.status).toBe(404);
      expect(await json(response)).toEqual({
        error: { message: 'The model `llama-70b` does not exist.', type: 'NotFoundError', code: 'model_not_found', param: 'model' },
      });
    }
    expect((await fetch(`${url}/v1/models/llama-70b`)).status).toBe(404);
  });

  it('refuses a non-JSON content type with 415', async () => {
    const response = await fetch(`${url}/v1/chat/completions`, { method: 'POST', body: 'model=x', headers: { 'content-type': 'application/xml' } });
    expect(response.status).toBe(415);
    expect((await json(response)).error.type).toBe('invalid_request_error');
  });

  it('still serves a valid request afterwards, and counted none of the rejected ones', async () => {
    const response = await postJson(`${url}/v1/chat/completions`, { model: MODEL, messages: user, max_tokens: 4 });
    expect(response.status).toBe(200);
    expect((await json(response)).usage.completion_tokens).toBeGreaterThan(0);
    const text = await scrape(url);
    const finished = ['stop', 'length', 'abort'].reduce(
      (sum, reason) => sum + (metric(text, 'vllm:request_success_total', { model_name: MODEL, finished_reason: reason }) ?? 0),
      0,
    );
    expect(finished).toBe(1);
  });
});
