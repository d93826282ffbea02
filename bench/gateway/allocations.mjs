// Bytes allocated per request by each service of the chain, and where: every process runs V8's
// sampling heap profiler (allocation-profile.mjs) over a closed-loop load, freed objects included.
// Allocation per request does not depend on how fast the machine is at the time, unlike latency.
//
// Usage: node bench/gateway/allocations.mjs [connections=1] [seconds=10] [stream=false]
// Prints per service: KiB allocated per request, and the top 12 functions and packages by bytes.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../infra/local/stack.mjs';
import { createTenant, MODEL, startChain, waitServing, chat } from './chain.mjs';

const connections = Number(process.argv[2] ?? 1);
const seconds = Number(process.argv[3] ?? 10);
const stream = process.argv[4] === 'true';
const fileOf = (name) => `/tmp/allocations-${process.pid}-${name}.heapprofile`;
const preload = { NODE_OPTIONS: '--import ./bench/gateway/allocation-profile.mjs' };
const chain = await startChain({ env: (name) => ({ ...preload, ALLOCATION_PROFILE_FILE: fileOf(name) }) });

function summarise(profile) {
  const byFunction = new Map();
  const byPackage = new Map();
  let total = 0;
  const visit = (node) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const bytes = node.selfSize;
    total += bytes;
    const pkg = url.includes('node_modules/') ? url.split('node_modules/').at(-1).split('/').slice(0, url.split('node_modules/').at(-1).startsWith('@') ? 2 : 1).join('/')
      : url.startsWith('node:') ? url : url ? `ours: ${path.relative(repoRoot, url.replace('file://', ''))}` : '(native)';
    const fn = `${functionName || '(anonymous)'} ${pkg}:${lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + bytes);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + bytes);
    for (const child of node.children) visit(child);
  };
  visit(profile.head);
  const top = (map) => [...map].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([key, bytes]) => ({ key, share: Number((bytes / total).toFixed(3)) }));
  return { total, functions: top(byFunction), packages: top(byPackage) };
}

try {
  const gateway = await chain.addGateway();
  const tenant = await createTenant(gateway.url);
  await waitServing(gateway.url, tenant.apiKey);
  for (let i = 0; i < 300; i++) await chat(gateway.url, tenant.apiKey);
  const services = [...chain.processes].filter(([name]) => name !== 'engine-fixture');
  for (const [name] of services) rmSync(fileOf(name), { force: true });
  for (const [, child] of services) child.kill('SIGUSR2');
  await new Promise((resolve) => setTimeout(resolve, 500));
  const spec = { url: `${gateway.url}/v1/chat/completions`, body: { model: MODEL, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 5, ...(stream ? { stream: true } : {}) },
    headers: { authorization: `Bearer ${tenant.apiKey}` }, connections, seconds, warmupRequests: 0 };
  const load = spawn(process.execPath, [path.join(repoRoot, 'bench/gateway/closed-loop-load.mjs'), JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  load.stdout.on('data', (chunk) => (out += chunk));
  await new Promise((resolve) => load.on('exit', resolve));
  for (const [, child] of services) child.kill('SIGUSR2');
  const result = JSON.parse(out);
  const report = { connections, seconds, stream, requests: result.requests, rps: result.rps, services: {} };
  for (const [name] of services) {
    for (let waited = 0; !existsSync(fileOf(name)) && waited < 30_000; waited += 200) await new Promise((resolve) => setTimeout(resolve, 200));
    const summary = summarise(JSON.parse(readFileSync(fileOf(name), 'utf8')));
    rmSync(fileOf(name), { force: true });
    report.services[name] = { kib_per_request: Number((summary.total / 1024 / result.requests).toFixed(1)), packages: summary.packages, functions: summary.functions };
  }
  console.log(JSON.stringify(report, null, 1));
} finally {
  await chain.stop();
}
