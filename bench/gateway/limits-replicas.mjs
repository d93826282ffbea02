// Issue 3, "must show": three REAL gateway processes behind one Redis, under parallel load spread
// across them, admit no more than a tenant's limit in any window: first 100 requests/minute, then
// 10,000 tokens/minute (limits set through the admin API). The rest of the chain (billing,
// scheduler, orchestrator, zero-delay engine fixture) runs once.
//
// Exact check: while the load runs, the tenant's sliding-window logs in Redis (ZSETs scored by
// Redis TIME at admission) are snapshotted every second; every admitted request is in them for 60 s,
// so the union is the full admission history with the limiter's own clock. The largest sum over any
// 60 s window (every window ending at an admission) must be <= the limit, and so must each fixed
// 60 s window from the first admission; the log must hold exactly the 200s the clients saw.
//
// Usage: node bench/gateway/limits-replicas.mjs [seconds-per-phase=130] [loops-per-gateway=4]
//   (after `source infra/local/node.sh; set -a; source .local/infra.env; set +a; npx tsc -b tsconfig.build.json`)
import Redis from 'ioredis';
import os from 'node:os';
import { admin, chat, createTenant, startChain, waitServing } from './chain.mjs';

const seconds = Number(process.argv[2] ?? 130);
const loops = Number(process.argv[3] ?? 4);
const WINDOW_MS = 60_000;
const PACE_MS = 100; // each loop sends at most one request per 100 ms: ~120 attempts/s over 3 gateways
const BIG = 1_000_000_000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const chain = await startChain();
const redis = new Redis(process.env.REDIS_URL);
try {
  const gateways = [];
  for (let i = 0; i < 3; i++) gateways.push(await chain.addGateway());
  const phases = [
    { name: 'requests', limit: 100, kind: 'requests', maxTokens: 5, limits: { key: { requests_per_minute: BIG, tokens_per_minute: BIG }, user: { requests_per_minute: BIG, tokens_per_minute: BIG }, tenant: { requests_per_minute: 100, tokens_per_minute: BIG, cost_micros_per_minute: BIG } } },
    { name: 'tokens', limit: 10_000, kind: 'tokens', maxTokens: 90, limits: { key: { requests_per_minute: BIG, tokens_per_minute: BIG }, user: { requests_per_minute: BIG, tokens_per_minute: BIG }, tenant: { requests_per_minute: BIG, tokens_per_minute: 10_000, cost_micros_per_minute: BIG } } },
  ];
  const report = { seconds, loopsPerGateway: loops, paceMs: PACE_MS, gateways: gateways.map((g) => g.url), cpus: os.cpus().length, cpu: os.cpus()[0]?.model, loadavgBefore: os.loadavg(), phases: [] };
  for (const phase of phases) {
    // Created without overrides, then limited through PUT /admin/tenants/:id/limits (read by every replica on the next request).
    const tenant = await createTenant(gateways[0].url);
    await admin(gateways[1].url, 'PUT', `/tenants/${tenant.tenantId}/limits`, { limits: phase.limits });
    await Promise.all(gateways.map((g) => waitServing(g.url, tenant.apiKey)));
    report.phases.push(await run(phase, tenant, gateways));
  }
  report.loadavgAfter = os.loadavg();
  console.log(JSON.stringify(report, null, 2));
  const failed = report.phases.filter((p) => p.maxSlidingWindow > p.limit || p.maxFixedWindow > p.limit || p.admittedMissingFromLog > 0);
  if (failed.length) { console.error(`LIMIT EXCEEDED in ${failed.map((p) => p.name).join(', ')}`); process.exitCode = 1; }
} finally {
  redis.disconnect();
  await chain.stop();
}

async function run(phase, tenant, gateways) {
  const log = `rl:{${tenant.tenantId}}:tenant:${tenant.tenantId}:${phase.kind}`;
  const admitted = new Map(); // request member -> { t, amount } (a correction replaces the amount, keeps the time)
  const snapshot = async () => {
    const entries = await redis.zrange(log, 0, -1, 'WITHSCORES');
    for (let i = 0; i < entries.length; i += 2) {
      const cut = entries[i].lastIndexOf(':');
      admitted.set(entries[i].slice(0, cut), { t: Number(entries[i + 1]), amount: Number(entries[i].slice(cut + 1)) });
    }
  };
  const results = [];
  const start = Date.now();
  const end = start + seconds * 1000;
  let snapping = true;
  const snapper = (async () => { while (snapping) { await snapshot(); await sleep(1_000); } })();
  await Promise.all(gateways.flatMap((gateway, g) => Array.from({ length: loops }, async () => {
    while (Date.now() < end) {
      const begun = Date.now();
      const result = await chat(gateway.url, tenant.apiKey, { maxTokens: phase.maxTokens });
      results.push({ ...result, gateway: g, at: begun - start });
      await sleep(Math.max(0, PACE_MS - (Date.now() - begun)));
    }
  })));
  await sleep(1_500); // let the last corrections land
  snapping = false;
  await snapper;
  await snapshot();

  // Exact: every 60 s window of the limiter's own clock, (t - 60 s, t] for each admission t.
  const times = [...admitted.values()].sort((a, b) => a.t - b.t);
  let maxSliding = 0;
  let sum = 0;
  for (let hi = 0, lo = 0; hi < times.length; hi++) {
    sum += times[hi].amount;
    while (times[lo].t <= times[hi].t - WINDOW_MS) sum -= times[lo++].amount;
    maxSliding = Math.max(maxSliding, sum);
  }
  // Per 60 s window of the limiter's clock, aligned at the first admission (Redis TIME and Date.now()
  // read the same host clock): admitted from the Redis log (exact); refused (429) by client receive time.
  const t0 = times[0]?.t ?? start;
  const windows = [];
  const slot = (t) => {
    const k = Math.max(0, Math.floor((t - t0) / WINDOW_MS));
    return (windows[k] ??= { window: `+${k * 60}-${(k + 1) * 60} s`, admitted: 0, admittedAmount: 0, refused429: 0, other: 0, admittedPerGateway: [0, 0, 0] });
  };
  for (const a of times) { const w = slot(a.t); w.admitted++; w.admittedAmount += a.amount; }
  const gatewayOf = new Map(results.filter((r) => r.requestId).map((r) => [r.requestId.replaceAll(':', '_'), r.gateway]));
  for (const [member, a] of admitted) { const g = gatewayOf.get(member); if (g !== undefined) slot(a.t).admittedPerGateway[g]++; }
  for (const r of results) {
    if (r.status === 429) slot(r.started + r.ms).refused429++;
    else if (r.status !== 200) slot(r.started + r.ms).other++;
  }
  const others = results.filter((r) => r.status !== 200 && r.status !== 429);
  const ok = results.filter((r) => r.status === 200);
  const summary = {
    name: phase.name, limit: phase.limit, unit: `${phase.kind}/minute (tenant)`, maxTokens: phase.maxTokens,
    attempts: results.length, admitted: ok.length, refused429: results.filter((r) => r.status === 429).length, other: others.length,
    otherSample: [...new Set(others.map((r) => `${r.status} ${r.code ?? r.error}: ${r.message ?? ''}`))].slice(0, 5),
    redisLogAdmissions: admitted.size,
    // Every 200 must be in the log; the log may hold a few more: requests whose limiter call ran in
    // Redis after the gateway's REDIS_TIMEOUT_MS had passed (answered by the fail policy, still charged).
    admittedMissingFromLog: ok.filter((r) => !admitted.has(String(r.requestId).replaceAll(':', '_'))).length, redisLogTotal: times.reduce((a, b) => a + b.amount, 0),
    maxSlidingWindow: maxSliding,
    maxFixedWindow: Math.max(0, ...windows.filter(Boolean).map((w) => w.admittedAmount)),
    clientTokensOf200s: phase.kind === 'tokens' ? ok.reduce((a, r) => a + (r.usage?.total_tokens ?? 0), 0) : undefined,
    windows: windows.filter(Boolean),
    latencyMsP50: ok.map((r) => r.ms).sort((a, b) => a - b)[Math.floor(ok.length / 2)] ?? null,
  };
  console.error(JSON.stringify({ phase: summary.name, limit: summary.limit, attempts: summary.attempts, admitted: summary.admitted, refused: summary.refused429, other: summary.other, maxSlidingWindow: summary.maxSlidingWindow, windows: summary.windows }));
  return summary;
}
