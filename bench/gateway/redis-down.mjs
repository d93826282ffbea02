// Issue 3, "must show": with Redis slow or stopped, every request gets its limit kind's configured
// answer (fail-open: admitted, 200; fail-closed: 503) within the configured timeout; none hangs.
//
// Starts its OWN redis-server on a free port (the shared one is never touched), one real gateway
// pointed at it (REDIS_TIMEOUT_MS, KILL_SWITCH_TIMEOUT_MS as below), and six tenants, one per
// (limit kind x policy): requests/tokens/cost per minute, on_redis_failure open or closed, each tier
// holding only that one limit. Scenarios: Redis up; Redis slow (`DEBUG SLEEP` on the own instance);
// Redis stopped (the own redis-server killed); Redis started again. Per scenario and tenant: the
// statuses and the max latency of `rounds` x `concurrency` non-streamed chats.
//
// Usage: node bench/gateway/redis-down.mjs [rounds=5] [concurrency=4]
import { spawn, execFileSync } from 'node:child_process';
import os from 'node:os';
import { freePort } from '../../infra/local/stack.mjs';
import { admin, chat, createTenant, startChain, waitServing } from './chain.mjs';

const rounds = Number(process.argv[2] ?? 5);
const concurrency = Number(process.argv[3] ?? 4);
const REDIS_TIMEOUT_MS = 150;
const KILL_SWITCH_TIMEOUT_MS = 50;
const SLEEP_S = 10;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const policies = { requests: 'open', tokens: 'open', cost: 'open' };
const field = { requests: 'requests_per_minute', tokens: 'tokens_per_minute', cost: 'cost_micros_per_minute' };
const tiers = { default: { on_redis_failure: policies } };
for (const kind of ['requests', 'tokens', 'cost']) {
  for (const policy of ['open', 'closed']) {
    tiers[`${kind}_${policy}`] = { tenant: { [field[kind]]: 1_000_000_000 }, on_redis_failure: { ...policies, [kind]: policy } };
  }
}

const redisPort = await freePort();
let redis;
const startRedis = async () => {
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--enable-debug-command', 'local'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try { execFileSync('redis-cli', ['-p', String(redisPort), 'PING'], { stdio: 'pipe' }); return; } catch { await sleep(100); }
  }
  throw new Error('own redis-server did not start');
};
const stopRedis = () => new Promise((resolve) => { redis.once('exit', resolve); redis.kill('SIGKILL'); });

await startRedis();
const chain = await startChain();
try {
  const gateway = await chain.addGateway({ REDIS_URL: `redis://127.0.0.1:${redisPort}`, REDIS_TIMEOUT_MS: String(REDIS_TIMEOUT_MS), KILL_SWITCH_TIMEOUT_MS: String(KILL_SWITCH_TIMEOUT_MS), RATE_LIMIT_TIERS: JSON.stringify(tiers) });
  const tenants = [];
  for (const tier of Object.keys(tiers).filter((name) => name !== 'default')) {
    const tenant = await createTenant(gateway.url);
    await admin(gateway.url, 'PUT', `/tenants/${tenant.tenantId}/limits`, { tier });
    tenants.push({ tier, expectDown: tier.endsWith('_closed') ? 503 : 200, ...tenant });
  }
  await waitServing(gateway.url, tenants[0].apiKey);

  const measure = async (scenario, down) => {
    // All tenants at once (6 x concurrency in flight), so a slow-Redis scenario fits in DEBUG SLEEP.
    const rows = await Promise.all(tenants.map(async (tenant) => {
      const results = [];
      for (let round = 0; round < rounds; round++) results.push(...(await Promise.all(Array.from({ length: concurrency }, () => chat(gateway.url, tenant.apiKey, { timeoutMs: 20_000 })))));
      const statuses = {};
      for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      const expected = down ? tenant.expectDown : 200;
      const ms = results.map((r) => r.ms).sort((a, b) => a - b);
      const row = { scenario, tier: tenant.tier, expected, statuses, allExpected: results.every((r) => r.status === expected), maxMs: ms.at(-1), p50Ms: ms[Math.floor(ms.length / 2)] };
      console.error(JSON.stringify(row));
      return row;
    }));
    return rows;
  };

  const rows = [];
  rows.push(...(await measure('redis up', false)));
  // Slow: the own instance blocks for SLEEP_S; requests sent meanwhile must not wait for it.
  const blocker = spawn('redis-cli', ['-p', String(redisPort), 'DEBUG', 'SLEEP', String(SLEEP_S)], { stdio: 'ignore' });
  await sleep(200);
  if (blocker.exitCode !== null) throw new Error('DEBUG SLEEP did not block the own redis-server');
  const slowStart = Date.now();
  rows.push(...(await measure(`redis slow (DEBUG SLEEP ${SLEEP_S})`, true)));
  const slowMs = Date.now() - slowStart;
  if (slowMs > SLEEP_S * 1000 - 200) throw new Error(`the slow scenario took ${slowMs} ms, longer than DEBUG SLEEP ${SLEEP_S}: lower rounds`);
  await new Promise((resolve) => blocker.exitCode !== null ? resolve() : blocker.once('exit', resolve));
  await sleep(500);
  rows.push(...(await measure('redis up again after sleep', false)));
  await stopRedis();
  await sleep(300);
  rows.push(...(await measure('redis stopped', true)));
  await startRedis();
  await sleep(3_000); // ioredis reconnects with backoff
  rows.push(...(await measure('redis restarted', false)));

  const report = {
    rounds, concurrency, redisTimeoutMs: REDIS_TIMEOUT_MS, killSwitchTimeoutMs: KILL_SWITCH_TIMEOUT_MS, slowScenarioWallMs: slowMs, cpus: os.cpus().length, loadavg: os.loadavg(), rows,
    allExpected: rows.every((r) => r.allExpected), maxMsWhileDown: Math.max(...rows.filter((r) => !r.scenario.includes('up') && r.scenario !== 'redis restarted').map((r) => r.maxMs)),
  };
  console.log(JSON.stringify(report, null, 2));
  if (!report.allExpected) process.exitCode = 1;
} finally {
  await chain.stop();
  if (redis.exitCode === null && redis.signalCode === null) await stopRedis();
}
