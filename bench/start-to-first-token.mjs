// Time from `npm start` on a prepared machine (dependencies installed, model
// present, nothing running) to the first streamed token through the gateway.
//   node bench/start-to-first-token.mjs [runs]
import { execSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[2] ?? 3);
const results = [];

for (let run = 0; run < runs; run++) {
  spawnSync('npm', ['stop'], { cwd: root, stdio: 'ignore' });
  const started = performance.now();
  execSync('npm start', { cwd: root, stdio: 'ignore' });
  const ready = performance.now();
  const { gatewayUrl, apiKey } = JSON.parse(readFileSync(path.join(root, '.local/dev-credentials.json'), 'utf8'));
  const response = await fetch(`${gatewayUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gemma-3-270m', stream: true, max_tokens: 16, messages: [{ role: 'user', content: 'Say hello' }] }),
  });
  const reader = response.body.getReader();
  let firstToken;
  let buffer = '';
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    buffer += new TextDecoder().decode(chunk.value);
    if (!firstToken && /"content":"[^"]+"/.test(buffer)) firstToken = performance.now();
  }
  results.push({ npmStartSeconds: (ready - started) / 1000, startToFirstTokenSeconds: (firstToken - started) / 1000 });
  console.log(JSON.stringify(results.at(-1)));
}

const sorted = (key) => results.map((result) => result[key]).sort((a, b) => a - b);
const summary = {
  machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model}`,
  node: process.version,
  runs,
  npmStartSeconds: sorted('npmStartSeconds'),
  startToFirstTokenSeconds: sorted('startToFirstTokenSeconds'),
  medianStartToFirstTokenSeconds: sorted('startToFirstTokenSeconds')[Math.floor(runs / 2)],
};
mkdirSync(path.join(root, 'bench/results'), { recursive: true });
writeFileSync(path.join(root, 'bench/results/start-to-first-token.json'), `${JSON.stringify(summary, null, 2)}\n`);
console.log(summary);
