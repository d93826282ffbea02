// Starts simulated engines and the real scheduler (built dist) as child
// processes, and drives Generate calls over gRPC, recording per-call TTFT,
// inter-token latency, output tokens and the status code.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import platform from '@ai-platform/platform';
import contracts from '@ai-platform/contracts';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PRIORITY = { interactive_premium: 1, interactive_standard: 2, batch: 3 };

export async function startSims(count, basePort, options) {
  const child = spawn(process.execPath, [path.join(root, 'bench/scheduler/sim-engine.mjs'), String(count), String(basePort), JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout, 'data');
  return { urls: Array.from({ length: count }, (_, i) => `http://127.0.0.1:${basePort + i}`), stop: () => stop(child) };
}

export async function startScheduler(env, grpcPort) {
  const child = spawn(process.execPath, [path.join(root, 'services/inference-scheduler/dist/main.js')], {
    env: { ...process.env, HTTP_PORT: String(grpcPort + 1), GRPC_PORT: String(grpcPort), LOG_LEVEL: 'warn', ENGINE_POLL_INTERVAL_MS: '500', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const client = platform.createGrpcClient(contracts.inference.InferenceService, `127.0.0.1:${grpcPort}`, { defaultTimeoutMs: 300_000 });
  for (let i = 0; ; i++) {
    try {
      const models = await client.listModels({}, { context: { tenantId: 'bench' } });
      if (models.models.length > 0 && models.models[0].readyEngines > 0) break;
    } catch {
      // not up yet
    }
    if (i > 300) throw new Error('scheduler did not come up');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { client, stop: async () => { client.close(); await stop(child); } };
}

async function stop(child) {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await Promise.race([once(child, 'exit'), new Promise((resolve) => setTimeout(resolve, 15_000))]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

/** One Generate call; never throws. */
export async function call(client, { model, messages, maxTokens, tenantId, priority }) {
  const started = performance.now();
  let first;
  let last;
  let tokens = 0;
  const gaps = [];
  try {
    const stream = client.generate(
      { model, messages, priority: PRIORITY[priority], sampling: { maxTokens } },
      { context: { tenantId, userId: 'u', requestId: `bench-${Math.random().toString(36).slice(2)}` } },
    );
    for await (const response of stream) {
      if (response.event.case !== 'delta') continue;
      const now = performance.now();
      if (first === undefined) first = now;
      else gaps.push(now - last);
      last = now;
      tokens++;
    }
    return { ok: true, ttftMs: first - started, itlMs: gaps.length ? gaps.reduce((a, b) => a + b, 0) / gaps.length : 0, tokens, endMs: performance.now(), priority, tenantId };
  } catch (error) {
    return { ok: false, code: error.code, ttftMs: first ? first - started : undefined, tokens, endMs: performance.now(), priority, tenantId };
  }
}

export function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Exponential inter-arrival times: a Poisson process at `ratePerSecond`, deterministic from `seed`. */
export function poissonArrivals(ratePerSecond, durationMs, seed) {
  let state = seed >>> 0 || 1;
  const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const times = [];
  for (let t = -Math.log(1 - random()) * (1000 / ratePerSecond); t < durationMs; t += -Math.log(1 - random()) * (1000 / ratePerSecond)) times.push(t);
  return { times, random };
}

/** Fires `make(i, random)` at each arrival time and waits for every call. */
export async function drive(client, arrivals, make) {
  const start = performance.now();
  const calls = arrivals.times.map(async (at, i) => {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - (performance.now() - start))));
    const result = await call(client, make(i, arrivals.random));
    return { ...result, startedAt: at };
  });
  const results = await Promise.all(calls);
  return { results, wallMs: performance.now() - start };
}

export function summarize(results, wallMs, ttftTargetMs) {
  const ok = results.filter((r) => r.ok);
  const ttft = ok.map((r) => r.ttftMs);
  const good = ok.filter((r) => r.ttftMs <= ttftTargetMs);
  const round = (value) => (value === null ? null : Math.round(value));
  return {
    requests: results.length,
    completed: ok.length,
    failed: results.length - ok.length,
    ttft_p50_ms: round(percentile(ttft, 50)),
    ttft_p90_ms: round(percentile(ttft, 90)),
    ttft_p99_ms: round(percentile(ttft, 99)),
    itl_mean_ms: ok.length ? Math.round((ok.reduce((sum, r) => sum + r.itlMs, 0) / ok.length) * 10) / 10 : null,
    output_tokens_per_s: Math.round(ok.reduce((sum, r) => sum + r.tokens, 0) / (wallMs / 1000)),
    goodput_rps: Math.round((good.length / (wallMs / 1000)) * 100) / 100,
  };
}
