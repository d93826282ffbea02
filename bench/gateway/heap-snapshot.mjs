// What a service holds while it serves: heap snapshots of one process of the chain, at rest and
// under closed-loop load, and the objects that grew between the two, by constructor.
//
// Usage: node bench/gateway/heap-snapshot.mjs [service=gateway-1] [connections=1] [seconds=10] [dir=/tmp]
// Prints the top 25 constructors by the growth of their self size, and writes both snapshots to dir.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../infra/local/stack.mjs';
import { createTenant, MODEL, startChain, waitServing, chat } from './chain.mjs';

const [service = 'gateway-1', connectionsArg = '1', secondsArg = '10', dir = '/tmp'] = process.argv.slice(2);
const connections = Number(connectionsArg);
const seconds = Number(secondsArg);
const snapshotDir = path.resolve(dir);
const flags = `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapshotDir}`;
const chain = await startChain({ env: (name) => (name === service ? { NODE_OPTIONS: flags } : {}) });
const snapshots = () => readdirSync(snapshotDir).filter((name) => name.endsWith('.heapsnapshot')).map((name) => path.join(snapshotDir, name));

async function snapshot(pid) {
  const before = new Set(snapshots());
  process.kill(pid, 'SIGUSR2');
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const fresh = snapshots().filter((file) => !before.has(file));
    // Written when its size stops changing.
    if (fresh.length) {
      const size = statSync(fresh[0]).size;
      await new Promise((resolve) => setTimeout(resolve, 1500));
      if (statSync(fresh[0]).size === size && size > 0) return fresh[0];
    }
  }
}

function byConstructor(file) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((field) => fields.indexOf(field));
  const totals = new Map();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const key = `${types[snap.nodes[i + typeAt]]}:${snap.strings[snap.nodes[i + nameAt]].slice(0, 60)}`;
    const entry = totals.get(key) ?? { count: 0, size: 0 };
    entry.count += 1;
    entry.size += snap.nodes[i + sizeAt];
    totals.set(key, entry);
  }
  return totals;
}

try {
  const gateway = await chain.addGateway();
  const tenant = await createTenant(gateway.url);
  await waitServing(gateway.url, tenant.apiKey);
  for (let i = 0; i < 200; i++) await chat(gateway.url, tenant.apiKey);
  const pid = chain.processes.get(service).pid;
  const rest = await snapshot(pid);
  const spec = { url: `${gateway.url}/v1/chat/completions`, body: { model: MODEL, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 5 },
    headers: { authorization: `Bearer ${tenant.apiKey}` }, connections, seconds };
  const load = spawn(process.execPath, [path.join(repoRoot, 'bench/gateway/closed-loop-load.mjs'), JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => setTimeout(resolve, (seconds * 1000) / 2));
  const busy = await snapshot(pid);
  await new Promise((resolve) => load.on('exit', resolve));
  const [a, b] = [byConstructor(rest), byConstructor(busy)];
  const growth = [...b].map(([key, entry]) => ({ key, count: entry.count - (a.get(key)?.count ?? 0), bytes: entry.size - (a.get(key)?.size ?? 0) }));
  growth.sort((x, y) => y.bytes - x.bytes);
  console.log(JSON.stringify({ service, connections, rest, busy, restBytes: [...a.values()].reduce((s, e) => s + e.size, 0), busyBytes: [...b.values()].reduce((s, e) => s + e.size, 0), top: growth.slice(0, 25) }, null, 1));
} finally {
  await chain.stop();
}
