// Closed-loop load against one OpenAI-compatible /v1/chat/completions endpoint, as a process of
// its own (so its CPU is not the measured server's): `connections` workers each send the next
// request as soon as the previous one has ended, over keep-alive sockets, for `seconds`.
// Per request it records the total time and, for streamed requests, the time to the first SSE
// `data:` event that carries content (choices[0].delta.content non-empty). autocannon cannot give
// the latter: it only sees whole responses. Percentiles are exact (sorted samples, sub-ms).
//
// Usage: node bench/gateway/closed-loop-load.mjs '<json spec>'
//   spec: { url, body (object), headers?, connections, seconds, warmupRequests? }
// Prints one JSON object on stdout: { requests, rps, errors, non2xx, errorSample, total: {p50,p90,p99,max,mean}, firstToken?: {...} }
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const spec = JSON.parse(process.argv[2]);
const target = new URL(spec.url);
const payload = Buffer.from(JSON.stringify(spec.body));
const streamed = spec.body.stream === true;
const headers = { 'content-type': 'application/json', 'content-length': String(payload.length), ...(spec.headers ?? {}) };
// One socket per worker, kept alive: the closed loop never waits for a connection of its own.
const agent = new http.Agent({ keepAlive: true, maxSockets: spec.connections, maxFreeSockets: spec.connections });

/** One request; resolves { status, totalMs, firstTokenMs?, error? } and never rejects. */
function once() {
  return new Promise((resolve) => {
    const started = performance.now();
    let firstTokenMs;
    let settled = false;
    const done = (result) => { if (!settled) { settled = true; resolve({ ...result, totalMs: performance.now() - started, firstTokenMs }); } };
    const request = http.request({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers, agent }, (response) => {
      let pending = '';
      response.setEncoding('utf8');
      response.on('data', (text) => {
        if (!streamed || firstTokenMs !== undefined) return;
        pending += text;
        // SSE events end with a blank line; look only at complete `data:` lines.
        let cut;
        while ((cut = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, cut).trim();
          pending = pending.slice(cut + 1);
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]') continue;
          try {
            if (JSON.parse(data).choices?.[0]?.delta?.content) { firstTokenMs = performance.now() - started; pending = ''; break; }
          } catch { /* a non-JSON data line is not a token */ }
        }
      });
      response.on('end', () => {
        if (response.statusCode !== 200) return done({ status: response.statusCode, error: `HTTP ${response.statusCode}` });
        if (streamed && firstTokenMs === undefined) return done({ status: 200, error: 'stream ended without content' });
        done({ status: 200 });
      });
      response.on('error', (error) => done({ status: response.statusCode ?? 0, error: String(error.code ?? error.message) }));
    });
    request.setTimeout(30_000, () => request.destroy(new Error('timeout')));
    request.on('error', (error) => done({ status: 0, error: String(error.code ?? error.message) }));
    request.end(payload);
  });
}

function summary(samples) {
  if (!samples.length) return null;
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.min(samples.length - 1, Math.ceil(q * samples.length) - 1)];
  const round = (ms) => Math.round(ms * 100) / 100;
  return { p50: round(at(0.5)), p90: round(at(0.9)), p99: round(at(0.99)), max: round(samples.at(-1)), mean: round(samples.reduce((a, b) => a + b, 0) / samples.length) };
}

// Warm-up: sockets opened and the server's first-request paths run before the clock starts.
const warmup = spec.warmupRequests ?? spec.connections;
await Promise.all(Array.from({ length: spec.connections }, async (_, worker) => {
  for (let i = worker; i < warmup; i += spec.connections) await once();
}));

const totals = [];
const firstTokens = [];
const errors = new Map();
let non2xx = 0;
let failed = 0;
const startedAt = performance.now();
const endAt = startedAt + spec.seconds * 1000;
await Promise.all(Array.from({ length: spec.connections }, async () => {
  while (performance.now() < endAt) {
    const result = await once();
    if (result.error) {
      failed++;
      if (result.status && result.status !== 200) non2xx++;
      errors.set(result.error, (errors.get(result.error) ?? 0) + 1);
      continue;
    }
    totals.push(result.totalMs);
    if (result.firstTokenMs !== undefined) firstTokens.push(result.firstTokenMs);
  }
}));
const elapsedS = (performance.now() - startedAt) / 1000;
agent.destroy();
process.stdout.write(`${JSON.stringify({
  connections: spec.connections, seconds: Math.round(elapsedS * 100) / 100, requests: totals.length, rps: Math.round((totals.length / elapsedS) * 10) / 10,
  errors: failed, non2xx, errorSample: Object.fromEntries([...errors].slice(0, 5)),
  total: summary(totals), ...(streamed ? { firstToken: summary(firstTokens) } : {}),
})}\n`);
