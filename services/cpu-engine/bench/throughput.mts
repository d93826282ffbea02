/**
 * CPU throughput of the cpu-engine with its real model, through its HTTP API.
 *
 *   npx tsc -b services/cpu-engine
 *   node services/cpu-engine/bench/throughput.mts [--tokens 128] [--runs 3] [--parallel 4] [--out result.json]
 *
 * Starts the built service (dist/main.js) as a child process and measures:
 * - start: process spawn -> HTTP listening with the model loaded (/health 200);
 * - prefill: time to first token of a ~1000-token prompt -> prompt tokens/s;
 * - single stream: decode tokens/s of one stream (ignore_eos, greedy);
 * - N parallel streams: aggregate tokens/s and per-stream tokens/s.
 * Env: MODEL_PATH (default <repo>/.local/models/gemma-3-270m-q4_k_m.gguf), THREADS, CONTEXT_SIZE.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const index = args.indexOf(`--${name}`);
  return index === -1 ? fallback : Number(args[index + 1]);
};
const outFile = args.includes('--out') ? args[args.indexOf('--out') + 1] : undefined;
const TOKENS = option('tokens', 128);
const RUNS = option('runs', 3);
const PARALLEL = option('parallel', 4);

const serviceDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = path.resolve(serviceDir, '../..');
const modelPath = process.env.MODEL_PATH ?? path.join(repoRoot, '.local/models/gemma-3-270m-q4_k_m.gguf');
const MODEL = 'bench-model';

interface StreamResult {
  ttftMs: number;
  totalMs: number;
  completionTokens: number;
  promptTokens: number;
  decodeTokensPerSecond: number;
}

async function startService(): Promise<{ url: string; startMs: number; loadMs: number; threads: number; stop: () => Promise<number | null> }> {
  const started = performance.now();
  const child = spawn(process.execPath, [path.join(serviceDir, 'dist/main.js')], {
    env: { ...process.env, MODEL_PATH: modelPath, MODEL_NAME: MODEL, HTTP_PORT: '0', LOG_LEVEL: 'info', PARALLEL_SEQUENCES: String(Math.max(PARALLEL, 1)) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let loadMs = 0;
  let threads = 0;
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`service exited with ${code} before listening`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; http?: string; load_ms?: number; threads?: number };
        if (entry.msg === 'model loaded') {
          loadMs = entry.load_ms ?? 0;
          threads = entry.threads ?? 0;
        }
        if (entry.msg === 'cpu-engine listening' && entry.http) resolve(entry.http);
      } catch {
        /* not a log line */
      }
    });
  });
  const health = await fetch(`${url}/health`);
  if (health.status !== 200) throw new Error(`/health answered ${health.status}`);
  const startMs = performance.now() - started;
  const stop = () =>
    new Promise<number | null>((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.kill('SIGTERM');
    });
  return { url, startMs, loadMs, threads, stop };
}

async function streamCompletion(url: string, prompt: string, maxTokens: number): Promise<StreamResult> {
  const started = performance.now();
  const response = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
  });
  if (!response.ok || !response.body) throw new Error(`completion failed: ${response.status} ${await response.text()}`);
  let first = 0;
  let last = 0;
  let usage = { prompt_tokens: 0, completion_tokens: 0 };
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const bytes of response.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let boundary: number;
    while ((boundary = buffer.indexOf('\n\n')) !== -1) {
      const event = buffer.slice(0, boundary).replace(/^data: /, '');
      buffer = buffer.slice(boundary + 2);
      if (event === '[DONE]') continue;
      const chunk = JSON.parse(event) as { choices: Array<{ text: string }>; usage?: typeof usage | null };
      if (chunk.usage) usage = chunk.usage;
      if (chunk.choices.length > 0) {
        last = performance.now();
        if (!first) first = last;
      }
    }
  }
  const decodeSeconds = (last - first) / 1000;
  return {
    ttftMs: first - started,
    totalMs: performance.now() - started,
    completionTokens: usage.completion_tokens,
    promptTokens: usage.prompt_tokens,
    decodeTokensPerSecond: decodeSeconds > 0 ? (usage.completion_tokens - 1) / decodeSeconds : 0,
  };
}

const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function main() {
  const loadBefore = loadavg();
  const service = await startService();
  console.error(`[bench] ready in ${round(service.startMs, 0)} ms (model load ${service.loadMs} ms) at ${service.url}`);
  await streamCompletion(service.url, 'Warm-up:', 8);

  const longPrompt = 'The history of computing is long and full of surprising turns. '.repeat(80);
  const prefill = await streamCompletion(service.url, longPrompt, 1);
  console.error(`[bench] prefill: ${prefill.promptTokens} tokens, TTFT ${round(prefill.ttftMs, 0)} ms`);

  const single: StreamResult[] = [];
  for (let run = 0; run < RUNS; run++) single.push(await streamCompletion(service.url, `Story ${run}: Once upon a time`, TOKENS));
  console.error(`[bench] single stream: ${single.map((r) => round(r.decodeTokensPerSecond)).join(', ')} tok/s`);

  const parallel: Array<{ wallMs: number; aggregate: number; perStream: number[]; ttftMs: number[] }> = [];
  for (let run = 0; run < RUNS; run++) {
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => streamCompletion(service.url, `Story ${run}-${i}: Once upon a time`, TOKENS)));
    const wallMs = performance.now() - started;
    const tokens = results.reduce((sum, r) => sum + r.completionTokens, 0);
    parallel.push({ wallMs, aggregate: tokens / (wallMs / 1000), perStream: results.map((r) => r.decodeTokensPerSecond), ttftMs: results.map((r) => r.ttftMs) });
  }
  console.error(`[bench] ${PARALLEL} parallel: ${parallel.map((r) => round(r.aggregate)).join(', ')} tok/s aggregate`);
  const exitCode = await service.stop();

  const result = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, loadavg_before: loadBefore.map((v) => round(v, 2)), loadavg_after: loadavg().map((v) => round(v, 2)), node: process.version },
    model: path.basename(modelPath),
    settings: { threads: service.threads, threads_source: process.env.THREADS ? 'THREADS' : 'default (usable CPUs - 1)', parallel_sequences: PARALLEL, max_tokens: TOKENS, runs: RUNS, sampling: 'greedy, ignore_eos' },
    start_to_ready_ms: round(service.startMs, 0),
    model_load_ms: service.loadMs,
    prefill: { prompt_tokens: prefill.promptTokens, ttft_ms: round(prefill.ttftMs, 0), prompt_tokens_per_second: round(prefill.promptTokens / (prefill.ttftMs / 1000)) },
    single_stream: {
      decode_tokens_per_second_median: round(median(single.map((r) => r.decodeTokensPerSecond))),
      ttft_ms_median: round(median(single.map((r) => r.ttftMs)), 0),
      runs: single.map((r) => ({ decode_tps: round(r.decodeTokensPerSecond), ttft_ms: round(r.ttftMs, 0), total_ms: round(r.totalMs, 0), tokens: r.completionTokens })),
    },
    parallel_streams: {
      streams: PARALLEL,
      aggregate_tokens_per_second_median: round(median(parallel.map((r) => r.aggregate))),
      per_stream_decode_tokens_per_second_median: round(median(parallel.flatMap((r) => r.perStream))),
      ttft_ms_median: round(median(parallel.flatMap((r) => r.ttftMs)), 0),
      runs: parallel.map((r) => ({ aggregate_tps: round(r.aggregate), wall_ms: round(r.wallMs, 0) })),
    },
    shutdown_exit_code: exitCode,
  };
  const json = JSON.stringify(result, null, 2);
  console.log(json);
  if (outFile) writeFileSync(outFile, `${json}\n`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
