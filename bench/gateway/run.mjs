// Latency the platform adds over the engine, next to two peer gateways, in ONE run against ONE
// engine process: the zero-delay engine fixture is started once; our platform (gateway ->
// orchestrator -> inference-scheduler -> fixture, billing's Reserve on the path, a request without a
// conversation), LiteLLM proxy and the Portkey gateway all point at it, and the fixture is also called
// directly. Each cell (mode json|stream x concurrency x system) is a closed-loop load process of its
// own (closed-loop-load.mjs): total time for every request, time to first content token for streams.
// "added" = system minus engine-direct at the same mode and concurrency. At the end: peak RSS
// (VmHWM) of every process of every system.
//
// Usage (after `source infra/local/node.sh; set -a; source .local/infra.env; set +a;
//   npx tsc -b tsconfig.build.json; bash bench/gateway/peers/install.sh`):
//   node bench/gateway/run.mjs [--seconds 5] [--concurrency 1,16,64] [--modes json,stream]
//     [--systems engine,platform,litellm,portkey] [--litellm-workers 1] [--out bench/results/gateway-peers.json]
//   (a bare number as first argument is --seconds, as before). Markdown table on stdout, per-cell
//   rows on stderr, the full report in --out (print it again: node bench/gateway/peers-table.mjs FILE).
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, SERVED_MODEL } from '../../infra/local/stack.mjs';
import { createTenant, startChain, stopProcess, waitServing } from './chain.mjs';
import { peersTable } from './peers-table.mjs';
import { peakRssMiB, processTree, startLiteLLM, startPortkey } from './peers.mjs';

const argv = process.argv.slice(2);
if (/^\d+(\.\d+)?$/.test(argv[0] ?? '')) argv.unshift('--seconds');
const { values: opts } = parseArgs({
  args: argv,
  options: {
    seconds: { type: 'string', default: '5' },
    'warmup-seconds': { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '1,16,64' },
    modes: { type: 'string', default: 'json,stream' },
    systems: { type: 'string', default: 'engine,platform,litellm,portkey' },
    'litellm-workers': { type: 'string', default: '1' },
    out: { type: 'string', default: path.join(repoRoot, 'bench/results/gateway-peers.json') },
  },
});
const seconds = Number(opts.seconds);
const warmupSeconds = Number(opts['warmup-seconds']);
const concurrencies = opts.concurrency.split(',').map(Number);
const modes = opts.modes.split(',');
const wanted = new Set(opts.systems.split(','));
const loadScript = path.join(repoRoot, 'bench/gateway/closed-loop-load.mjs');

const report = {
  command: `node bench/gateway/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  startedAt: new Date().toISOString(),
  seconds, warmupSeconds, concurrencies, modes,
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadavgBefore: os.loadavg().map((l) => +l.toFixed(2)) },
  body: { model: SERVED_MODEL, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 5 },
  systems: {}, failures: {}, cells: [], highestRps: {}, peakRssMiB: {},
};

// ---- the platform: fixture + the services on the request path (retrieval and tool-sandbox are off it)
const chain = await startChain();
// Limits far above what the run can send, so nothing is refused (the limiter still runs).
const tiers = JSON.stringify({ default: { key: { requests_per_minute: 10_000_000, tokens_per_minute: 1_000_000_000 } } });
const gateway = await chain.addGateway({ RATE_LIMIT_TIERS: tiers });
const { apiKey } = await createTenant(gateway.url);
await waitServing(gateway.url, apiKey);
const engineUrl = chain.engineUrl;
const gatewayUrl = gateway.url;
const processes = new Map(); // system -> Map(process name -> child)
processes.set('engine', new Map([['engine-fixture', chain.processes.get('engine-fixture')]]));
processes.set('platform', new Map([...chain.processes].filter(([name]) => name !== 'engine-fixture')));

const systems = [];
if (wanted.has('engine')) systems.push({ name: 'engine', url: engineUrl, headers: {} });
report.systems.engine = { what: 'engine fixture called directly (bench/gateway/engine-fixture.mjs, zero delay)' };
if (wanted.has('platform')) systems.push({ name: 'platform', url: gatewayUrl, headers: { authorization: `Bearer ${apiKey}` } });
report.systems.platform = { what: 'gateway -> orchestrator -> inference-scheduler -> fixture; API key, Redis limits, billing Reserve, new conversation stored', processes: [...processes.get('platform').keys()] };

// ---- the peers, each one hop in front of the same fixture
const peerStarters = { litellm: () => startLiteLLM(engineUrl, { workers: Number(opts['litellm-workers']) }), portkey: () => startPortkey(engineUrl) };
const peers = [];
for (const [name, start] of Object.entries(peerStarters)) {
  if (!wanted.has(name)) continue;
  try {
    const peer = await start();
    peers.push(peer);
    processes.set(name, new Map([[name, peer.child]]));
    systems.push(peer);
    report.systems[name] = name === 'litellm'
      ? { what: 'LiteLLM proxy, openai/ provider with api_base, no database, master key', version: peer.version, workers: peer.workers }
      : { what: 'Portkey gateway (npm build/start-server.js, headless), x-portkey-provider: openai + x-portkey-custom-host', version: peer.version, honoNodeServer: peer.honoNodeServer };
  } catch (error) {
    report.failures[name] = String(error.message).slice(0, 2000);
    console.error(`[bench] ${name} not measured: ${error.message}`);
  }
}

/** Runs one closed-loop cell as a separate process (async: the peers' pipes keep draining meanwhile). */
function cell(system, stream, connections, cellSeconds = seconds) {
  const body = { ...report.body, ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}) };
  const spec = { url: `${system.url}/v1/chat/completions`, body, headers: system.headers, connections, seconds: cellSeconds, warmupRequests: Math.max(20, connections) };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [loadScript, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load process exited ${code}`))));
  });
}

/** One request of each mode must come back with the fixture's words, or the system is left out. */
async function answersCorrectly(system) {
  for (const stream of [false, true]) {
    const response = await fetch(`${system.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json', ...system.headers },
      body: JSON.stringify({ ...report.body, ...(stream ? { stream: true } : {}) }), signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    if (response.status !== 200 || !text.includes(stream ? '"Hello"' : 'Hello from the fixture.')) throw new Error(`${stream ? 'stream' : 'json'}: ${response.status} ${text.slice(0, 300)}`);
  }
}
for (const system of [...systems]) {
  try { await answersCorrectly(system); } catch (error) {
    report.failures[system.name] = `smoke request failed: ${error.message}`;
    systems.splice(systems.indexOf(system), 1);
    console.error(`[bench] ${system.name} left out: ${error.message}`);
  }
}

const pick = (s) => (s ? { p50: s.p50, p99: s.p99 } : null);
const minus = (a, b) => (a && b ? { p50: +(a.p50 - b.p50).toFixed(2), p99: +(a.p99 - b.p99).toFixed(2) } : null);
try {
  // Warm-up, discarded: every system, every mode, at the highest concurrency. Without it the
  // first measured cells carry the JIT warm-up and pool growth of every process on the path
  // (json c=1 measured 16.4 ms first, 8.6 ms after the stream cells on the same stack).
  if (warmupSeconds > 0) {
    for (const system of systems) for (const mode of modes) await cell(system, mode === 'stream', Math.max(...concurrencies), warmupSeconds);
  }
  for (const mode of modes) {
    for (const c of concurrencies) {
      let direct;
      // The systems take turns within each cell, so a drift in machine load hits them alike.
      for (const system of systems) {
        const r = await cell(system, mode === 'stream', c);
        if (system.name === 'engine') direct = r;
        const row = {
          mode, c, system: system.name, requests: r.requests, rps: r.rps, errors: r.errors, non2xx: r.non2xx, errorSample: r.errorSample,
          total: r.total, firstToken: r.firstToken ?? null,
          addedTotal: system.name === 'engine' ? null : minus(r.total, direct?.total),
          addedFirstToken: system.name === 'engine' || mode !== 'stream' ? null : minus(r.firstToken, direct?.firstToken),
        };
        report.cells.push(row);
        console.error(JSON.stringify({ mode, c, system: system.name, rps: r.rps, errors: r.errors, total: pick(r.total), firstToken: pick(r.firstToken), addedTotal: row.addedTotal, addedFirstToken: row.addedFirstToken }));
      }
    }
  }
  for (const system of systems) {
    const best = report.cells.filter((row) => row.system === system.name && row.errors === 0).sort((a, b) => b.rps - a.rps)[0];
    if (best) report.highestRps[system.name] = { rps: best.rps, mode: best.mode, c: best.c };
  }
  for (const [system, children] of processes) {
    if (!systems.some((measured) => measured.name === system)) continue;
    const perProcess = {};
    for (const [name, child] of children) {
      const tree = processTree(child.pid);
      tree.forEach((pid, i) => { perProcess[i === 0 ? name : `${name}-child-${pid}`] = peakRssMiB(pid); });
    }
    report.peakRssMiB[system] = { total: Object.values(perProcess).reduce((a, b) => a + (b ?? 0), 0), processes: perProcess };
  }
  report.machine.loadavgAfter = os.loadavg().map((l) => +l.toFixed(2));
  mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
  writeFileSync(opts.out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(peersTable(report));
  console.error(`[bench] report written to ${opts.out}`);
} finally {
  await Promise.all([...peers.map((peer) => stopProcess(peer.child)), chain.stop()]);
}
