// Syscalls per request of every service on the hot path: the chain of profile.mjs under
// autocannon, with `strace -c -f` attached to each service for the measured seconds.
// Socket writes are a large share of each service's CPU on the benchmark machine
// (profile.mjs), so their count per request is what a change to the hot path should move.
//
// Usage: node bench/gateway/syscalls.mjs [seconds=10] [connections=16] [stream=false]
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../infra/local/stack.mjs';
import { chat, createTenant, MODEL, startChain, waitServing } from './chain.mjs';

const seconds = Number(process.argv[2] ?? 10);
const connections = Number(process.argv[3] ?? 16);
const stream = process.argv[4] === 'true';
// --no-strace: only the CPU time of every process on the machine over the measured seconds.
const traced = !process.argv.includes('--no-strace');

/** utime + stime in ms of every process, keyed by pid, with its command name. */
function cpuOfAll() {
  const out = new Map();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      out.set(pid, { cmd, ms: ((Number(rest[11]) + Number(rest[12])) * 1000) / 100 });
    } catch { /* exited */ }
  }
  return out;
}
const autocannon = path.join(repoRoot, '.local/tools/bench-node/node_modules/autocannon/autocannon.js');

const chain = await startChain();
const summary = { seconds, connections, stream, services: {} };
try {
  const tiers = JSON.stringify({ default: { key: { requests_per_minute: 10_000_000, tokens_per_minute: 1_000_000_000 } } });
  const gateway = await chain.addGateway({ RATE_LIMIT_TIERS: tiers });
  const tenant = await createTenant(gateway.url);
  await waitServing(gateway.url, tenant.apiKey);
  for (let i = 0; i < 200; i++) await chat(gateway.url, tenant.apiKey);
  const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 5, ...(stream ? { stream: true } : {}) });
  const names = new Map([...chain.processes].map(([name, child]) => [String(child.pid), name]));
  const tracers = !traced ? [] : [...chain.processes].filter(([name]) => name !== 'engine-fixture').map(([name, child]) => {
    const tracer = spawn('strace', ['-c', '-f', '-p', String(child.pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let out = '';
    tracer.stderr.on('data', (c) => (out += c));
    return { name, tracer, done: new Promise((resolve) => tracer.on('exit', () => resolve(out))) };
  });
  await new Promise((r) => setTimeout(r, 1000));
  const before = cpuOfAll();
  const out = spawnSync(process.execPath, [autocannon, '-j', '-c', String(connections), '-d', String(seconds), '-m', 'POST', '-H', 'content-type=application/json',
    '-H', `authorization=Bearer ${tenant.apiKey}`, '-b', body, `${gateway.url}/v1/chat/completions`], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const r = JSON.parse(out.stdout);
  const requests = r.requests.total;
  const after = cpuOfAll();
  const cpu = {};
  for (const [pid, { cmd, ms }] of after) {
    const used = ms - (before.get(pid)?.ms ?? 0);
    if (used <= 0) continue;
    const name = names.get(pid) ?? (cmd.some((a) => a.includes('autocannon')) ? 'load (autocannon)' : cmd.some((a) => a.includes('kafka')) ? 'kafka' : path.basename(cmd[0] ?? '?').replace(/:.*/, ''));
    cpu[name] = (cpu[name] ?? 0) + used;
  }
  summary.cpuMsPerRequest = Object.fromEntries(Object.entries(cpu).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, +(v / requests).toFixed(3)]));
  summary.run = { requests, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx };
  for (const t of tracers) t.tracer.kill('SIGINT');
  for (const t of tracers) {
    const text = await t.done;
    const rows = {};
    for (const line of text.split('\n')) {
      const m = line.trim().match(/^\s*([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(?:(\d+)\s+)?(\w+)$/);
      if (m) rows[m[6]] = { perRequest: +(Number(m[4]) / requests).toFixed(2), usPerCall: Number(m[3]) };
    }
    summary.services[t.name] = Object.fromEntries(Object.entries(rows).sort((a, b) => b[1].perRequest - a[1].perRequest).slice(0, 12));
  }
} finally {
  await chain.stop();
}
console.log(JSON.stringify(summary, null, 1));
