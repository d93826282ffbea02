// CPU profile of the hot path of a non-streamed chat without a conversation: every service of
// gateway -> orchestrator -> scheduler (+ billing's Reserve) runs under `node --cpu-prof` while
// autocannon (a separate process) drives the gateway; then each profile's self time is summed per
// function and per package, and printed.
//
// Usage: node bench/gateway/profile.mjs [seconds=10] [connections=16] [out-dir=/tmp/gateway-prof]
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../infra/local/stack.mjs';
import { chat, createTenant, MODEL, startChain, waitServing } from './chain.mjs';

const seconds = Number(process.argv[2] ?? 10);
const connections = Number(process.argv[3] ?? 16);
const outDir = path.resolve(process.argv[4] ?? '/tmp/gateway-prof');
const autocannon = path.join(repoRoot, '.local/tools/bench-node/node_modules/autocannon/autocannon.js');
rmSync(outDir, { recursive: true, force: true });
const dir = (name) => { const d = path.join(outDir, name.replace(/-\d+$/, '')); mkdirSync(d, { recursive: true }); return d; };

const chain = await startChain({ env: (name) => ({ NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir(name)}` }) });
let run;
try {
  const tiers = JSON.stringify({ default: { key: { requests_per_minute: 10_000_000, tokens_per_minute: 1_000_000_000 } } });
  const gateway = await chain.addGateway({ RATE_LIMIT_TIERS: tiers });
  const tenant = await createTenant(gateway.url);
  await waitServing(gateway.url, tenant.apiKey);
  for (let i = 0; i < 20; i++) await chat(gateway.url, tenant.apiKey); // warm-up
  const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 5 });
  const out = spawnSync(process.execPath, [autocannon, '-j', '-c', String(connections), '-d', String(seconds), '-m', 'POST', '-H', 'content-type=application/json',
    '-H', `authorization=Bearer ${tenant.apiKey}`, '-b', body, `${gateway.url}/v1/chat/completions`], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const r = JSON.parse(out.stdout);
  run = { requests: r.requests.total, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx };
} finally {
  await chain.stop(); // SIGTERM: each service exits normally and writes its profile
}

const summary = { seconds, connections, run, loadavg: os.loadavg(), services: {} };
for (const service of readdirSync(outDir)) {
  for (const file of readdirSync(path.join(outDir, service)).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(path.join(outDir, service, file), 'utf8'));
    const dt = new Map();
    for (let i = 0; i < profile.samples.length; i++) dt.set(profile.samples[i], (dt.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
    const byFn = new Map();
    const byPkg = new Map();
    let total = 0;
    let idle = 0;
    for (const node of profile.nodes) {
      const ms = dt.get(node.id) ?? 0;
      if (!ms) continue;
      const { functionName, url, lineNumber } = node.callFrame;
      if (functionName === '(idle)') { idle += ms; continue; }
      total += ms;
      const key = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(repoRoot, '')}:${lineNumber + 1}`;
      byFn.set(key, (byFn.get(key) ?? 0) + ms);
      const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? (url.startsWith('node:') ? 'node:internal' : url.includes('/libs/') ? 'libs (ours)' : url.includes('/services/') ? 'service (ours)' : functionName.startsWith('(') ? functionName : 'other');
      byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + ms);
    }
    const top = (map, n) => [...map].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => [k, Math.round(v), `${((v / total) * 100).toFixed(1)}%`]);
    summary.services[service] = { busyMs: Math.round(total), idleMs: Math.round(idle), busyMsPerRequest: run ? +(total / run.requests).toFixed(2) : null, packages: top(byPkg, 12), functions: top(byFn, 15) };
  }
}
console.log(JSON.stringify(summary, null, 2));
