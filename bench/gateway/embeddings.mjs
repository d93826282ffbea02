// Latency and throughput of /v1/embeddings on the running platform (`npm start`): the real
// all-MiniLM-L6-v2 on the cpu-engine, called directly and through gateway -> billing hold ->
// orchestrator -> scheduler (usage event) -> engine. Closed-loop load in a process of its own
// (closed-loop-load.mjs), one batch size and concurrency per cell; engine direct and platform
// take turns within each cell's pair.
//
// Usage: node bench/gateway/embeddings.mjs [--seconds 10] [--concurrency 1,4] [--batch 1,16] [--out bench/results/gateway-embeddings.json]
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultPorts, repoRoot } from '../../infra/local/stack.mjs';

const arg = (name, fallback) => {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? process.argv[index + 1] : fallback;
};
const seconds = Number(arg('seconds', '10'));
const concurrencies = arg('concurrency', '1,4').split(',').map(Number);
const batches = arg('batch', '1,16').split(',').map(Number);
const out = arg('out', path.join(repoRoot, 'bench/results/gateway-embeddings.json'));

const credentials = JSON.parse(readFileSync(path.join(process.env.PLATFORM_LOCAL_DIR ?? path.join(repoRoot, '.local'), 'dev-credentials.json'), 'utf8'));
const gateway = `http://127.0.0.1:${process.env.GATEWAY_PORT ?? defaultPorts.gateway.http}`;
const engine = `http://127.0.0.1:${defaultPorts['cpu-engine'].http}`;
const sentence = (i) => `Sentence number ${i} is about a lighthouse keeper who watches the sea at night.`;

function load(url, body, connections, headers = {}) {
  const spec = { url, body, headers, connections, seconds, warmupRequests: Math.max(10, connections * 2) };
  return JSON.parse(execFileSync(process.execPath, [path.join(repoRoot, 'bench/gateway/closed-loop-load.mjs'), JSON.stringify(spec)], { encoding: 'utf8' }));
}

const loadBefore = os.loadavg();
const cells = [];
for (const batch of batches) {
  const body = { model: 'all-minilm-l6-v2', input: Array.from({ length: batch }, (_, i) => sentence(i)) };
  for (const c of concurrencies) {
    const direct = load(`${engine}/v1/embeddings`, body, c);
    const platform = load(`${gateway}/v1/embeddings`, body, c, { authorization: `Bearer ${credentials.apiKey}` });
    const cell = { batch, concurrency: c, direct, platform, addedP50: platform.total.p50 - direct.total.p50, addedP99: platform.total.p99 - direct.total.p99 };
    cells.push(cell);
    console.error(`batch ${batch} c=${c}: engine ${direct.total.p50.toFixed(2)} / ${direct.total.p99.toFixed(2)} ms (${direct.rps.toFixed(0)}/s), platform ${platform.total.p50.toFixed(2)} / ${platform.total.p99.toFixed(2)} ms (${platform.rps.toFixed(0)}/s), errors ${direct.errors + direct.non2xx} / ${platform.errors + platform.non2xx}`);
  }
}
const report = {
  at: new Date().toISOString(), machine: `${os.cpus().length} × ${os.cpus()[0]?.model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
  seconds, loadBefore, loadAfter: os.loadavg(), cells,
};
writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
console.log('| inputs per request | c | engine direct p50 / p99 ms | platform p50 / p99 ms | added p50 / p99 ms | platform req/s | errors |');
console.log('|---|---|---|---|---|---|---|');
for (const cell of cells) {
  const f = (x) => x.toFixed(2);
  console.log(`| ${cell.batch} | ${cell.concurrency} | ${f(cell.direct.total.p50)} / ${f(cell.direct.total.p99)} | ${f(cell.platform.total.p50)} / ${f(cell.platform.total.p99)} | ${f(cell.addedP50)} / ${f(cell.addedP99)} | ${cell.platform.rps.toFixed(0)} | ${cell.platform.errors + cell.platform.non2xx} |`);
}
