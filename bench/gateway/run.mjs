// Latency the platform adds over the engine: starts the zero-delay engine fixture, the stack
// (gateway -> orchestrator -> scheduler, billing reservation) pointed at it, a tenant, then drives
// autocannon (a separate process) against the engine directly and through the gateway.
// Usage: node bench/gateway/run.mjs [seconds-per-run]   (needs .local/infra.env sourced and a build)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePorts, repoRoot, serviceEnv, spawnService, startOrder, waitReady, SERVED_MODEL } from '../../infra/local/stack.mjs';

const seconds = Number(process.argv[2] ?? 10);
const autocannon = path.join(repoRoot, '.local/tools/bench-node/node_modules/autocannon/autocannon.js');
const infra = Object.fromEntries(['DATABASE_URL', 'REDIS_URL', 'KAFKA_BROKERS', 'MODEL_PATH'].map((k) => [k, process.env[k] ?? '']));
const ports = await freePorts();
const children = new Map();

const fixture = spawn(process.execPath, [path.join(repoRoot, 'bench/gateway/engine-fixture.mjs')], { env: { ...process.env, PORT: String(ports['cpu-engine'].http) }, stdio: 'ignore' });
children.set('engine-fixture', fixture);
await waitReady(`http://127.0.0.1:${ports['cpu-engine'].http}/health`, { name: 'engine-fixture' });
const tiers = JSON.stringify({ default: { key: { requests_per_minute: 10_000_000, tokens_per_minute: 1_000_000_000 } } });
for (const name of startOrder.filter((n) => n !== 'cpu-engine')) {
  const extra = name === 'gateway' ? { RATE_LIMIT_TIERS: tiers } : {};
  const child = spawnService(name, { ...serviceEnv(name, ports, infra, {}), ...extra, LOG_LEVEL: 'warn' });
  child.stdout?.resume(); child.stderr?.resume();
  children.set(name, child);
  await waitReady(`http://127.0.0.1:${ports[name].http}/readyz`, { name, timeoutMs: 120_000 });
}
const gateway = `http://127.0.0.1:${ports.gateway.http}`;
const engine = `http://127.0.0.1:${ports['cpu-engine'].http}`;
const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'bench-')), 'creds.json');
execFileSync(process.execPath, [path.join(repoRoot, 'services/gateway/dist/cli/seed-dev.js'), file, gateway], { env: { ...process.env, DEV_TENANT_ID: `bench_${Date.now()}`, DEV_USER_ID: 'bench_user' }, stdio: 'pipe' });
const { apiKey } = JSON.parse(readFileSync(file, 'utf8'));
for (let i = 0; i < 200; i++) {
  const r = await fetch(`${gateway}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } });
  if (r.ok && (await r.json()).data.some((m) => m.id === SERVED_MODEL)) break;
  await new Promise((resolve) => setTimeout(resolve, 250));
}

function load(url, stream, connections, auth) {
  const body = JSON.stringify({ model: SERVED_MODEL, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 5, ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}) });
  const args = [autocannon, '-j', '-c', String(connections), '-d', String(seconds), '-m', 'POST', '-H', 'content-type=application/json', '-b', body];
  if (auth) args.push('-H', `authorization=Bearer ${apiKey}`);
  const out = spawnSync(process.execPath, [...args, `${url}/v1/chat/completions`], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const r = JSON.parse(out.stdout);
  return { p50: r.latency.p50, p99: r.latency.p99, rps: r.requests.average, non2xx: r.non2xx, errors: r.errors };
}

const rows = [];
for (const stream of [false, true]) {
  for (const c of [1, 16, 64]) {
    const direct = load(engine, stream, c, false);
    const platform = load(gateway, stream, c, true);
    rows.push({ mode: stream ? 'stream' : 'json', c, direct, platform, addedP50: platform.p50 - direct.p50, addedP99: platform.p99 - direct.p99 });
    console.error(JSON.stringify(rows.at(-1)));
  }
}
const rss = {};
for (const [name, child] of children) {
  try { rss[name] = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) >> 10; } catch { rss[name] = null; }
}
console.log(JSON.stringify({ seconds, rows, peakRssMiB: rss, cpus: os.cpus().length, cpu: os.cpus()[0]?.model }, null, 2));
for (const child of children.values()) child.kill('SIGTERM');
