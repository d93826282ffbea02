import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { buildService, json, MODEL, postJson, REPO_ROOT, SERVICE_DIR, sseEvents, startChild, type ChildService } from './support/engine';

let running: ChildService | undefined;

beforeAll(() => {
  // The child runs the compiled service, as a pod would.
  buildService();
});

afterEach(() => {
  if (running && running.child.exitCode === null) running.child.kill('SIGKILL');
  running = undefined;
});

const stream = (url: string, maxTokens: number) =>
  postJson(`${url}/v1/chat/completions`, {
    model: MODEL,
    messages: [{ role: 'user', content: 'Tell me a long story.' }],
    max_tokens: maxTokens,
    temperature: 0,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
  });

async function firstContent(events: AsyncGenerator<string>, seen: string[]): Promise<void> {
  for (;;) {
    const next = await events.next();
    if (next.done) throw new Error(`stream ended before any content: ${seen.join(' | ')}`);
    seen.push(next.value);
    if (JSON.parse(next.value).choices?.[0]?.delta?.content) return;
  }
}

describe('graceful shutdown (SIGTERM) of the engine process', () => {
  it('lets an open stream finish, refuses new work meanwhile, unloads the model and exits 0', async () => {
    running = await startChild({ SHUTDOWN_GRACE_MS: '60000', PARALLEL_SEQUENCES: '2' });
    const { child, url, exited, logs } = running;
    const events = sseEvents(await stream(url, 40));
    const seen: string[] = [];
    await firstContent(events, seen);

    child.kill('SIGTERM');
    // Draining: readiness fails and new requests are turned away with 503 while the stream goes on.
    await expect.poll(async () => (await fetch(`${url}/readyz`)).status, { timeout: 5_000 }).toBe(503);
    const refused = await postJson(`${url}/v1/completions`, { model: MODEL, prompt: 'x', max_tokens: 1 });
    expect(refused.status).toBe(503);
    expect((await json(refused)).error.type).toBe('service_unavailable');

    for await (const event of events) seen.push(event);
    expect(seen.at(-1)).toBe('[DONE]');
    const chunks = seen.slice(0, -1).map((event) => JSON.parse(event));
    expect(chunks.some((chunk) => 'error' in chunk)).toBe(false);
    expect(chunks.at(-2).choices[0].finish_reason).toBe('length');
    expect(chunks.at(-1).usage.completion_tokens).toBe(40);

    expect(await exited).toBe(0);
    const log = logs.join('\n');
    expect(log).toContain('"drained":1');
    expect(log).toContain('model unloaded');
  });

  it('past the grace period, ends the stream with an error event and [DONE], then exits 0', async () => {
    running = await startChild({ SHUTDOWN_GRACE_MS: '300', PARALLEL_SEQUENCES: '2' });
    const { child, url, exited, logs } = running;
    const events = sseEvents(await stream(url, 1800));
    const seen: string[] = [];
    await firstContent(events, seen);

    const signalled = Date.now();
    child.kill('SIGTERM');
    for await (const event of events) seen.push(event);
    expect(seen.at(-1)).toBe('[DONE]');
    const last = JSON.parse(seen.at(-2)!);
    expect(last).toEqual({ error: { message: expect.stringContaining('shutting down'), type: 'service_unavailable', code: 'service_unavailable', param: null } });

    expect(await exited).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(15_000);
    const log = logs.join('\n');
    expect(log).toContain('"forced":1');
    expect(log).toContain('model unloaded');
  });
});

describe('start-up', () => {
  it('refuses to start without the model file, saying which variable to fix (exit 78)', () => {
    const result = spawnSync(process.execPath, [path.join(SERVICE_DIR, 'dist/main.js')], {
      cwd: REPO_ROOT,
      env: { ...process.env, MODEL_PATH: '/nonexistent/model.gguf', HTTP_PORT: '0' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(78);
    expect(result.stderr).toContain('MODEL_PATH: no such file');
  });
});
