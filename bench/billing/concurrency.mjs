// Concurrency proof (issue 4): N concurrent chat requests through the real gateway at a
// tenant whose credit covers about K worst cases, first with one gateway, then with 3
// gateway replicas (same env, own ports, requests round-robin). The whole stack runs as
// processes on free ports (infra/local/stack.mjs), cpu-engine included.
//
//   set -a; source .local/infra.env; set +a; npx tsc -b tsconfig.build.json
//   node bench/billing/concurrency.mjs --requests 500 --credit-for 20 --max-tokens 4
//
// Prints one JSON line per scenario (also appended to bench/results/billing-concurrency.jsonl).
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { billing } from '@ai-platform/contracts';
import { createGrpcClient, createPool } from '@ai-platform/platform';
import { freePort, freePorts, repoRoot, SERVED_MODEL, serviceEnv, spawnService, startOrder, waitReady } from '../../infra/local/stack.mjs';
import { runConcurrency } from './concurrency-lib.mjs';

const { values: args } = parseArgs({
  options: { requests: { type: 'string', default: '500' }, 'credit-for': { type: 'string', default: '20' }, 'max-tokens': { type: 'string', default: '4' }, replicas: { type: 'string', default: '1,3' } },
});
const infra = Object.fromEntries(['DATABASE_URL', 'REDIS_URL', 'KAFKA_BROKERS', 'MODEL_PATH'].map((name) => [name, process.env[name]]));
if (!infra.DATABASE_URL || !infra.MODEL_PATH) throw new Error('source .local/infra.env first');

// Per-key and per-tenant request limits well above the burst: the point is credit, not rate limits.
const tiers = { default: { key: { requests_per_minute: 100_000 }, user: { requests_per_minute: 100_000 }, tenant: { requests_per_minute: 100_000 }, on_redis_failure: { requests: 'open', tokens: 'open', cost: 'closed' } } };
const extra = { gateway: { RATE_LIMIT_TIERS: JSON.stringify(tiers), LOG_LEVEL: 'warn' }, billing: { LOG_LEVEL: 'warn', REDIS_URL: infra.REDIS_URL } };
const ports = await freePorts();
const children = [];
const log = (...parts) => console.error('[concurrency]', ...parts);
async function start(name, plan = ports) {
  const child = spawnService(name, { ...serviceEnv(name, plan, infra, extra), ...(name === 'gateway' ? {} : { LOG_LEVEL: 'warn' }) });
  const tail = [];
  const keep = (chunk) => { tail.push(chunk.toString()); if (tail.length > 40) tail.shift(); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  children.push(child);
  try {
    await waitReady(`http://127.0.0.1:${plan[name].http}/readyz`, { name, isAlive: () => child.exitCode === null, timeoutMs: 180_000 });
  } catch (error) {
    throw new Error(`${error.message}\n${tail.join('')}`);
  }
  return `http://127.0.0.1:${plan[name].http}`;
}
const stopAll = async () => {
  for (const child of children.reverse()) {
    if (child.exitCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
};
process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));

try {
  for (const name of startOrder) await start(name);
  const gateways = [`http://127.0.0.1:${ports.gateway.http}`];
  const rpc = createGrpcClient(billing.BillingService, `127.0.0.1:${ports.billing.grpc}`, { defaultTimeoutMs: 10_000 });
  const pool = createPool(infra.DATABASE_URL, { applicationName: 'billing-concurrency', max: 2 });
  const createTenant = () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'creds-')), 'credentials.json');
    execFileSync(process.execPath, [path.join(repoRoot, 'services/gateway/dist/cli/seed-dev.js'), file, gateways[0]], {
      env: { ...process.env, DATABASE_URL: infra.DATABASE_URL, DEV_TENANT_ID: `tenant_${randomUUID().slice(0, 12)}`, DEV_USER_ID: `user_${randomUUID().slice(0, 12)}` },
      stdio: 'pipe',
    });
    return JSON.parse(readFileSync(file, 'utf8'));
  };
  // The chain serves the model once the gateway lists it.
  const probe = createTenant();
  for (let i = 0; i < 600; i++) {
    const listed = await fetch(`${gateways[0]}/v1/models`, { headers: { authorization: `Bearer ${probe.apiKey}` } }).then((r) => (r.ok ? r.json() : { data: [] }), () => ({ data: [] }));
    if (listed.data.some((model) => model.id === SERVED_MODEL)) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  for (const replicas of args.replicas.split(',').map(Number)) {
    while (gateways.length < replicas) gateways.push(await start('gateway', { ...ports, gateway: { http: await freePort() } }));
    const tenant = createTenant();
    log(`${args.requests} requests over ${replicas} gateway(s), credit for ${args['credit-for']} worst cases, tenant ${tenant.tenantId}`);
    const result = await runConcurrency({
      gateways: gateways.slice(0, replicas), apiKey: tenant.apiKey, tenantId: tenant.tenantId, rpc, pool, model: SERVED_MODEL,
      requests: Number(args.requests), creditFor: Number(args['credit-for']), maxTokens: Number(args['max-tokens']),
    });
    const line = JSON.stringify({ at: new Date().toISOString(), load: os.loadavg().map((l) => +l.toFixed(2)), tenant: tenant.tenantId, ...result });
    console.log(line);
    appendFileSync(path.join(repoRoot, 'bench/results/billing-concurrency.jsonl'), `${line}\n`);
  }
  rpc.close();
  await pool.end();
} finally {
  await stopAll();
}
