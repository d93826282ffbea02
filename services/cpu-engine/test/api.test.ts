import OpenAI, { NotFoundError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '@ai-platform/platform';
import { collectSse, metric, MODEL, postJson, scrape, startInProcess, json } from './support/engine';

let service: RunningService<unknown>;
let url: string;
let openai: OpenAI;

beforeAll(async () => {
  service = await startInProcess({ PARALLEL_SEQUENCES: '4', CONTEXT_SIZE: '2048' });
  url = service.httpUrl;
  openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  await service?.shutdown('test end');
});

const chat = (body: Record<string, unknown>) => postJson(`${url}/v1/chat/completions`, { model: MODEL, ...body });
const complete = (body: Record<string, unknown>) => postJson(`${url}/v1/completions`, { model: MODEL, ...body });
const question = [{ role: 'user', content: 'Write one sentence about the sea.' }];

describe('vLLM endpoints', () => {
  it('lists the served model with max_model_len, and is live and ready', async () => {
    const models = await json(fetch(`${url}/v1/models`));
    expect(models).toMatchObject({ object: 'list', data: [{ id: MODEL, object: 'model', owned_by: 'vllm', max_model_len: 2048 }] });
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await json(ready)).toMatchObject({ status: 'ready', checks: { model: 'ok' } });
  });

  it('answers a non-streamed chat completion with real text and usage', async () => {
    const response = await chat({ messages: question, max_tokens: 24, temperature: 0 });
    expect(response.status).toBe(200);
    const body = await json(response);
    expect(body).toMatchObject({ object: 'chat.completion', model: MODEL, choices: [{ index: 0, message: { role: 'assistant' } }] });
    expect(body.id).toMatch(/^chatcmpl-/);
    const [choice] = body.choices;
    expect(choice.message.content.trim().length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(choice.finish_reason);
    // Gemma's template around the question: <bos><start_of_turn>user\n ... <end_of_turn>\n<start_of_turn>model\n
    expect(body.usage.prompt_tokens).toBeGreaterThan(10);
    expect(body.usage.completion_tokens).toBeGreaterThan(0);
    expect(body.usage.completion_tokens).toBeLessThanOrEqual(24);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
  });

  it('streams a chat completion: role chunk, content chunks, finish chunk, usage chunk, [DONE]', async () => {
    const response = await chat({ messages: question, max_tokens: 20, temperature: 0, stream: true, stream_options: { include_usage: true } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const events = await collectSse(response);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((event) => JSON.parse(event));
    for (const chunk of chunks) expect(chunk).toMatchObject({ id: chunks[0].id, object: 'chat.completion.chunk', model: MODEL });
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    const usageChunk = chunks.at(-1);
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toMatchObject({ prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number) });
    expect(usageChunk.usage.total_tokens).toBe(usageChunk.usage.prompt_tokens + usageChunk.usage.completion_tokens);
    const finish = chunks.at(-2);
    expect(['stop', 'length']).toContain(finish.choices[0].finish_reason);
    const text = chunks.slice(1, -1).map((chunk) => chunk.choices[0].delta.content ?? '').join('');
    expect(text.trim().length).toBeGreaterThan(0);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.usage).toBeNull();
  });

  it('puts running usage in every chunk with continuous_usage_stats (what the scheduler meters aborted calls with)', async () => {
    const response = await chat({ messages: question, max_tokens: 16, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true, continuous_usage_stats: true } });
    const chunks = (await collectSse(response)).slice(0, -1).map((event) => JSON.parse(event));
    const counts = chunks.map((chunk) => chunk.usage.completion_tokens as number);
    expect(counts[0]).toBe(0);
    for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeGreaterThanOrEqual(counts[i - 1]!);
    expect(counts.at(-2)).toBe(16); // the finish chunk
    expect(chunks.at(-1).usage).toMatchObject({ prompt_tokens: chunks[0].usage.prompt_tokens, completion_tokens: 16 });
  });

  it('completes raw text, streamed and not, and honours max_tokens with finish_reason length', async () => {
    const plain = await json(complete({ prompt: 'The capital of France is', max_tokens: 12, temperature: 0, ignore_eos: true }));
    expect(plain).toMatchObject({ object: 'text_completion', choices: [{ index: 0, finish_reason: 'length' }], usage: { completion_tokens: 12 } });
    expect(plain.id).toMatch(/^cmpl-/);
    expect(plain.choices[0].text.length).toBeGreaterThan(0);

    const events = await collectSse(await complete({ prompt: 'The capital of France is', max_tokens: 12, temperature: 0, ignore_eos: true, stream: true }));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((event) => JSON.parse(event));
    for (const chunk of chunks) expect(chunk.object).toBe('text_completion');
    expect(chunks.at(-1).choices[0].finish_reason).toBe('length');
    // Greedy decoding: the stream spells out exactly the non-streamed text.
    expect(chunks.map((chunk) => chunk.choices[0].text).join('')).toBe(plain.choices[0].text);
  });

  it('stops at a stop string and leaves it out of the text', async () => {
    const counting = await json(complete({ prompt: '1, 2, 3, 4, 5,', max_tokens: 30, temperature: 0, ignore_eos: true }));
    const full: string = counting.choices[0].text;
    // Pick a stop string from the model's own greedy continuation, then ask again with it.
    const stop = full.trim().split(/\s+/)[2]!;
    expect(stop).toBeTruthy();
    const stopped = await json(complete({ prompt: '1, 2, 3, 4, 5,', max_tokens: 30, temperature: 0, ignore_eos: true, stop: [stop] }));
    expect(stopped.choices[0].finish_reason).toBe('stop');
    expect(stopped.choices[0].text).toBe(full.slice(0, full.indexOf(stop)));
    const streamed = (await collectSse(await complete({ prompt: '1, 2, 3, 4, 5,', max_tokens: 30, temperature: 0, ignore_eos: true, stop, stream: true })))
      .slice(0, -1)
      .map((event) => JSON.parse(event).choices[0].text)
      .join('');
    expect(streamed).toBe(stopped.choices[0].text);
  });

  it('samples reproducibly with a seed', async () => {
    const body = { prompt: 'My favourite animal is', max_tokens: 16, temperature: 1, top_p: 0.95, seed: 1234, ignore_eos: true };
    // One after the other: two sequences decoded in one batch take other float
    // paths through llama.cpp's kernels, and at temperature 1 that can flip a token.
    const a = await json(await complete(body));
    const b = await json(await complete(body));
    expect(b.choices[0].text).toBe(a.choices[0].text);
  });

  it('reuses a cached prompt prefix without leaking the previous request into the next', async () => {
    const system = { role: 'system', content: `You are a terse assistant. Facts: ${'the sky is blue; grass is green; '.repeat(20)}` };
    const ask = (content: string) => chat({ messages: [system, { role: 'user', content }], max_tokens: 12, temperature: 0 }).then(json);
    const before = metric(await scrape(url), 'vllm:prefix_cache_hits_total', { model_name: MODEL }) ?? 0;
    const first = await ask('What colour is the sky?');
    await ask('What colour is grass?');
    const again = await ask('What colour is the sky?');
    expect(again.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(first.usage.prompt_tokens / 2);
    expect(again.choices[0].message.content).toBe(first.choices[0].message.content);
    const after = metric(await scrape(url), 'vllm:prefix_cache_hits_total', { model_name: MODEL }) ?? 0;
    expect(after - before).toBeGreaterThan(first.usage.prompt_tokens / 2);
  });

  it('tokenizes like vLLM: /tokenize counts exactly the prompt tokens a request is billed for', async () => {
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Count these tokens, please.' }];
    const counted = await json(postJson(`${url}/tokenize`, { model: MODEL, messages }));
    expect(counted).toMatchObject({ count: counted.tokens.length, max_model_len: 2048, token_strs: null });
    const billed = await json(chat({ messages, max_tokens: 1 }));
    expect(billed.usage.prompt_tokens).toBe(counted.count);

    const text = await json(postJson(`${url}/tokenize`, { prompt: 'Hello world' }));
    expect(text.tokens[0]).toBe(2); // Gemma's <bos>, added as vLLM's tokenizer does
    expect(await json(postJson(`${url}/detokenize`, { tokens: text.tokens.slice(1) }))).toEqual({ prompt: 'Hello world' });
    const bad = await postJson(`${url}/detokenize`, { tokens: [1, 99_999_999] });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.param).toBe('tokens[1]');
  });

  it('exports vLLM metric names labelled with model_name and engine', async () => {
    const text = await scrape(url);
    const labels = { model_name: MODEL, engine: '0' };
    for (const name of [
      'vllm:num_requests_running',
      'vllm:num_requests_waiting',
      'vllm:kv_cache_usage_perc',
      'vllm:prompt_tokens_total',
      'vllm:generation_tokens_total',
      'vllm:prefix_cache_queries_total',
      'vllm:prefix_cache_hits_total',
      'vllm:time_to_first_token_seconds_count',
      'vllm:inter_token_latency_seconds_count',
      'vllm:e2e_request_latency_seconds_count',
      'vllm:request_queue_time_seconds_count',
      'vllm:request_prompt_tokens_count',
      'vllm:request_generation_tokens_count',
    ]) {
      expect(metric(text, name, labels), name).toBeDefined();
    }
    expect(metric(text, 'vllm:prompt_tokens_total', labels)).toBeGreaterThan(0);
    expect(metric(text, 'vllm:generation_tokens_total', labels)).toBeGreaterThan(0);
    expect(metric(text, 'vllm:request_success_total', { ...labels, finished_reason: 'length' })).toBeGreaterThan(0);
    expect(metric(text, 'vllm:request_success_total', { ...labels, finished_reason: 'abort' })).toBe(0);
    expect(metric(text, 'vllm:num_requests_running', labels)).toBe(0);
    expect(metric(text, 'vllm:kv_cache_usage_perc', labels)).toBe(0);
    // 4 sequences x 2048 tokens in vLLM's 16-token blocks.
    expect(metric(text, 'vllm:cache_config_info', { ...labels, block_size: '16', num_gpu_blocks: '512' })).toBe(1);
  });
});

describe('official openai client', () => {
  it('creates chat completions, streamed and not, and lists models', async () => {
    const completion = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 16, temperature: 0 });
    expect(completion.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(completion.usage!.completion_tokens).toBeGreaterThan(0);

    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Name a colour.' }] }],
      max_completion_tokens: 16,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(finish);
    expect(usage!.total_tokens).toBe(usage!.prompt_tokens + usage!.completion_tokens);

    const legacy = await openai.completions.create({ model: MODEL, prompt: 'Roses are red,', max_tokens: 8, temperature: 0 });
    expect(legacy.choices[0]!.text.length).toBeGreaterThan(0);

    const models = await openai.models.list();
    expect(models.data.map((model) => model.id)).toEqual([MODEL]);
  });

  it('surfaces an unknown model as NotFoundError (404)', async () => {
    const error = await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as NotFoundError).status).toBe(404);
    expect((error as NotFoundError).message).toContain('The model `gpt-4o` does not exist.');
  });
});
