import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '@ai-platform/platform';
import { collectSse, eventually, metric, MODEL, postJson, scrape, sseEvents, startInProcess } from './support/engine';

let service: RunningService<unknown>;
let url: string;
const labels = { model_name: MODEL, engine: '0' };

beforeAll(async () => {
  // Two sequences, so a third request has to wait.
  service = await startInProcess({ PARALLEL_SEQUENCES: '2', CONTEXT_SIZE: '2048' });
  url = service.httpUrl;
});

afterAll(async () => {
  await service?.shutdown('test end');
});

const streamCompletion = (prompt: string, maxTokens: number, signal?: AbortSignal) =>
  postJson(`${url}/v1/completions`, { model: MODEL, prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } }, { signal });

const gauges = async () => {
  const text = await scrape(url);
  return {
    running: metric(text, 'vllm:num_requests_running', labels),
    waiting: metric(text, 'vllm:num_requests_waiting', labels),
    kv: metric(text, 'vllm:kv_cache_usage_perc', labels) ?? NaN,
    aborted: metric(text, 'vllm:request_success_total', { ...labels, finished_reason: 'abort' }) ?? 0,
    generated: metric(text, 'vllm:generation_tokens_total', labels) ?? 0,
    queueCount: metric(text, 'vllm:request_queue_time_seconds_count', labels) ?? 0,
  };
};

/** Reads `count` token chunks of a completion stream, leaving the stream open. */
async function readTokens(events: AsyncGenerator<string>, count: number): Promise<void> {
  for (let read = 0; read < count; ) {
    const next = await events.next();
    if (next.done) throw new Error('stream ended early');
    if (JSON.parse(next.value).choices?.[0]?.text !== undefined) read++;
  }
}

const idle = async () => expect(await gauges()).toMatchObject({ running: 0, waiting: 0, kv: 0 });

describe('parallel sequences and the FIFO queue', () => {
  it('runs two streams at once on two sequences and both complete', async () => {
    const [a, b] = await Promise.all([streamCompletion('The first story:', 40), streamCompletion('The second story:', 40)]);
    const [eventsA, eventsB] = [sseEvents(a), sseEvents(b)];
    await Promise.all([readTokens(eventsA, 1), readTokens(eventsB, 1)]);
    const during = await gauges();
    expect(during.running).toBe(2);
    expect(during.waiting).toBe(0);
    expect(during.kv).toBeGreaterThan(0);
    const rest = async (events: AsyncGenerator<string>) => {
      const all: string[] = [];
      for await (const event of events) all.push(event);
      return all;
    };
    for (const events of await Promise.all([rest(eventsA), rest(eventsB)])) {
      expect(events.at(-1)).toBe('[DONE]');
      expect(JSON.parse(events.at(-2)!).usage.completion_tokens).toBe(40);
    }
    await eventually(idle);
  });

  it('queues a third request until a sequence frees, then serves it', async () => {
    const before = await gauges();
    const streams = await Promise.all([streamCompletion('One:', 40), streamCompletion('Two:', 40), streamCompletion('Three:', 40)]);
    const seen = await eventually(async () => {
      const now = await gauges();
      expect(now).toMatchObject({ running: 2, waiting: 1 });
      return now;
    });
    expect(seen.kv).toBeGreaterThan(0);
    const results = await Promise.all(streams.map((response) => collectSse(response)));
    for (const events of results) {
      expect(events.at(-1)).toBe('[DONE]');
      expect(JSON.parse(events.at(-2)!).usage.completion_tokens).toBe(40);
    }
    const after = await gauges();
    expect(after.queueCount - before.queueCount).toBe(3);
    await eventually(idle);
  });
});

describe('client disconnects', () => {
  it('aborts a stream at once when the client goes away, frees the sequence and counts the abort', async () => {
    const before = await gauges();
    const controller = new AbortController();
    const response = await streamCompletion('A very long story:', 1500, controller.signal);
    await readTokens(sseEvents(response), 3);
    expect((await gauges()).running).toBe(1);
    controller.abort();
    const after = await eventually(async () => {
      const now = await gauges();
      expect(now).toMatchObject({ running: 0, waiting: 0, kv: 0, aborted: before.aborted + 1 });
      return now;
    }, 5_000, 20);
    // The tokens generated before the abort are counted, and generation stopped long before max_tokens.
    expect(after.generated - before.generated).toBeGreaterThanOrEqual(3);
    expect(after.generated - before.generated).toBeLessThan(200);
    // The freed sequence serves the next request.
    const next = await collectSse(await streamCompletion('Next:', 5));
    expect(next.at(-1)).toBe('[DONE]');
  });

  it('takes a waiting request out of the queue when its client goes away', async () => {
    const before = await gauges();
    const longRuns = [new AbortController(), new AbortController()];
    const running = await Promise.all(longRuns.map((c, i) => streamCompletion(`Long story ${i}:`, 1500, c.signal)));
    const queuedAbort = new AbortController();
    const queued = streamCompletion('Never served:', 10, queuedAbort.signal);
    await eventually(async () => expect(await gauges()).toMatchObject({ running: 2, waiting: 1 }));
    queuedAbort.abort();
    await queued.then((response) => response.body?.cancel()).catch(() => undefined);
    await eventually(async () => expect(await gauges()).toMatchObject({ running: 2, waiting: 0, aborted: before.aborted + 1 }));
    for (const controller of longRuns) controller.abort();
    await Promise.all(running.map((response) => response.body?.cancel().catch(() => undefined)));
    await eventually(async () => expect(await gauges()).toMatchObject({ running: 0, waiting: 0, kv: 0, aborted: before.aborted + 3 }));
  });

  it('aborts a non-streamed request whose client gives up', async () => {
    const before = await gauges();
    const request = postJson(
      `${url}/v1/completions`,
      { model: MODEL, prompt: 'An endless list:', max_tokens: 1500, temperature: 0, ignore_eos: true },
      { signal: AbortSignal.timeout(1_500) },
    );
    await expect(request).rejects.toThrow();
    await eventually(async () => expect(await gauges()).toMatchObject({ running: 0, aborted: before.aborted + 1 }), 5_000, 20);
  });
});
