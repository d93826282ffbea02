// Issue 3, "must show": replayed and concurrent duplicates lead to exactly one usage record in
// billing. Against the real chain (engine fixture, billing, scheduler, orchestrator, N gateway
// processes on one Redis): `keys` distinct Idempotency-Keys, half of them streamed; each key is
// sent `copies` times at once (within `jitter-ms`), spread over the gateways, then `replays` more
// times one after another once the first answer is complete. The gateway lets one copy run (200), answers the others 409
// while it runs or replays its stored response (200 + idempotent-replayed: true) after.
//
// Then, once billing has consumed the usage events (Kafka usage.events.v1), Postgres must hold for
// the tenant: one reservation per key that ran, all settled; exactly one usage record per key, with
// the request id of the copy that ran and none for any other request; each record charged once
// (balance_change_micros = -cost_micros, a ledger transaction) and the tenant's usage ledger entries
// summing to minus the recorded cost; one stored turn (2 messages) per key. Every replay must be
// byte-identical to the answer that ran.
//
// Usage: node bench/gateway/duplicates.mjs [--keys 200] [--copies 5] [--jitter-ms 50] [--replays 2]
//          [--gateways 3] [--parallel 10] [--out bench/results/gateway-duplicates.json]
//   (after `source infra/local/node.sh; set -a; source .local/infra.env; set +a; npx tsc -b tsconfig.build.json`)
// Exits 1 when any check fails.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { repoRoot } from '../../infra/local/stack.mjs';
import { createTenant, MODEL, startChain, waitServing } from './chain.mjs';

const { values: opts } = parseArgs({
  options: {
    keys: { type: 'string', default: '200' },
    copies: { type: 'string', default: '5' },
    replays: { type: 'string', default: '2' },
    gateways: { type: 'string', default: '3' },
    parallel: { type: 'string', default: '10' },
    'jitter-ms': { type: 'string', default: '50' },
    out: { type: 'string', default: path.join(repoRoot, 'bench/results/gateway-duplicates.json') },
  },
});
const [keys, copies, replays, gatewayCount, parallel] = ['keys', 'copies', 'replays', 'gateways', 'parallel'].map((name) => Number(opts[name]));
const jitter = Number(opts['jitter-ms']);
const BIG = 1_000_000_000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const runId = `dup-${Date.now().toString(36)}`;

/** One POST with an Idempotency-Key; the whole body is read (a stream to its end). Never throws. */
async function send(gateway, apiKey, key, body) {
  try {
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body), signal: AbortSignal.timeout(60_000),
    });
    const text = await response.text();
    let code;
    if (response.status !== 200) try { code = JSON.parse(text).error?.code; } catch { /* not JSON */ }
    return { status: response.status, replayed: response.headers.get('idempotent-replayed') === 'true', requestId: response.headers.get('x-request-id'), text, code, gateway: gateway.name };
  } catch (error) {
    return { status: 0, error: String(error?.name ?? error), gateway: gateway.name };
  }
}

async function exercise(index, gateways, apiKey) {
  const stream = index % 2 === 1;
  const key = `${runId}-${index}`;
  const body = { model: MODEL, messages: [{ role: 'user', content: `Duplicate check ${index}.` }], max_tokens: 5, ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}) };
  // Copy 0 goes at once, the others within `jitter` ms: some land while the first is still running
  // (409), some after it has finished (a replay), across different gateways.
  const concurrent = await Promise.all(Array.from({ length: copies }, async (_, copy) => {
    if (copy > 0 && jitter > 0) await sleep(Math.random() * jitter);
    return send(gateways[(index + copy) % gateways.length], apiKey, key, body);
  }));
  const ran = concurrent.filter((r) => r.status === 200 && !r.replayed);
  const later = [];
  let waitedOn409 = 0;
  for (let i = 0; i < replays; i++) {
    // The stored answer is written just after the last byte went out, so a replay sent at once may
    // still find the key running (409, retry-after): the client's documented move is to retry.
    let answer = await send(gateways[(index + i) % gateways.length], apiKey, key, body);
    for (let tries = 0; answer.status === 409 && tries < 20; tries++) { waitedOn409++; await sleep(100); answer = await send(gateways[(index + i) % gateways.length], apiKey, key, body); }
    later.push(answer);
  }
  return { index, key, mode: stream ? 'stream' : 'json', concurrent, replays: later, ran, waitedOn409 };
}

const chain = await startChain();
const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
await db.connect();
let report;
try {
  const tiers = JSON.stringify({ default: { key: { requests_per_minute: 10_000_000, tokens_per_minute: BIG } } });
  const gateways = [];
  for (let i = 0; i < gatewayCount; i++) gateways.push(await chain.addGateway({ RATE_LIMIT_TIERS: tiers }));
  const unlimited = { requests_per_minute: BIG, tokens_per_minute: BIG };
  const tenant = await createTenant(gateways[0].url, { key: unlimited, user: unlimited, tenant: { ...unlimited, cost_micros_per_minute: BIG } });
  await Promise.all(gateways.map((g) => waitServing(g.url, tenant.apiKey)));

  const started = Date.now();
  const results = [];
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < keys) results.push(await exercise(next++, gateways, tenant.apiKey));
  }));
  const sendSeconds = (Date.now() - started) / 1000;

  // What the clients saw, per mode.
  const modes = {};
  for (const r of results) {
    const m = (modes[r.mode] ??= { keys: 0, keysThatRan: 0, keysRunTwice: 0, concurrent: { ran: 0, replayed: 0, replayedIdentical: 0, conflict409: 0, other: 0 }, replays: { replayed: 0, identical: 0, other: 0, retriedAfter409: 0 }, otherSample: [] });
    m.keys++;
    m.replays.retriedAfter409 += r.waitedOn409;
    if (r.ran.length === 1) m.keysThatRan++;
    if (r.ran.length > 1) m.keysRunTwice++;
    for (const c of r.concurrent) {
      if (c.status === 200 && !c.replayed) m.concurrent.ran++;
      else if (c.status === 200) { m.concurrent.replayed++; if (r.ran[0] && c.text === r.ran[0].text) m.concurrent.replayedIdentical++; }
      else if (c.status === 409 && c.code === 'idempotency_in_flight') m.concurrent.conflict409++;
      else { m.concurrent.other++; if (m.otherSample.length < 5) m.otherSample.push(`${c.status} ${c.code ?? c.error ?? ''}`); }
    }
    for (const c of r.replays) {
      if (c.status === 200 && c.replayed) { m.replays.replayed++; if (r.ran[0] && c.text === r.ran[0].text) m.replays.identical++; }
      else { m.replays.other++; if (m.otherSample.length < 5) m.otherSample.push(`replay ${c.status} ${c.code ?? c.error ?? ''}`); }
    }
  }
  const ranIds = new Map(results.filter((r) => r.ran.length === 1).map((r) => [r.ran[0].requestId, r.key]));

  // Billing settles asynchronously (scheduler outbox -> Kafka -> billing consumer): wait for it.
  const scalar = async (sql) => Number((await db.query(sql, [tenant.tenantId])).rows[0].n);
  const settleStarted = Date.now();
  for (;;) {
    const usage = await scalar('SELECT count(*) AS n FROM billing.usage_records WHERE tenant_id = $1');
    const held = await scalar(`SELECT count(*) AS n FROM billing.reservations WHERE tenant_id = $1 AND status = 'held'`);
    if ((usage >= ranIds.size && held === 0) || Date.now() - settleStarted > 120_000) break;
    await sleep(500);
  }
  await sleep(2_000); // anything late (a second record would be) has time to land
  const settleSeconds = (Date.now() - settleStarted) / 1000;

  const records = (await db.query('SELECT request_id, cost_micros, balance_change_micros, ledger_transaction_id FROM billing.usage_records WHERE tenant_id = $1', [tenant.tenantId])).rows;
  const perRequest = new Map();
  for (const row of records) perRequest.set(row.request_id, [...(perRequest.get(row.request_id) ?? []), row]);
  const reservations = (await db.query('SELECT status, count(*)::int AS n FROM billing.reservations WHERE tenant_id = $1 GROUP BY status', [tenant.tenantId])).rows;
  const ledger = (await db.query(
    `SELECT coalesce(sum(e.amount_micros), 0)::bigint AS n FROM billing.ledger_entries e
       JOIN billing.ledger_transactions t ON t.id = e.transaction_id
       JOIN billing.accounts a ON a.id = e.account_id AND a.tenant_id = $1
      WHERE t.kind = 'usage' AND t.tenant_id = $1`, [tenant.tenantId])).rows[0].n;
  const recordedCost = records.reduce((sum, row) => sum + Number(row.cost_micros), 0);
  const messages = await scalar('SELECT count(*) AS n FROM orchestrator.messages WHERE tenant_id = $1');

  const checks = {
    everyKeyRanOnce: results.every((r) => r.ran.length === 1),
    noClientErrors: Object.values(modes).every((m) => m.concurrent.other === 0 && m.replays.other === 0),
    everyReplayIdentical: Object.values(modes).every((m) => m.replays.identical === m.replays.replayed && m.replays.replayed === m.keys * replays && m.concurrent.replayedIdentical === m.concurrent.replayed),
    oneReservationPerKeyAllSettled: reservations.length === 1 && reservations[0].status === 'settled' && reservations[0].n === ranIds.size,
    oneUsageRecordPerKey: records.length === ranIds.size && [...ranIds.keys()].every((id) => perRequest.get(id)?.length === 1),
    noUsageForOtherRequests: records.every((row) => ranIds.has(row.request_id)),
    eachRecordChargedOnce: records.every((row) => row.ledger_transaction_id && Number(row.balance_change_micros) === -Number(row.cost_micros) && Number(row.cost_micros) > 0),
    ledgerEqualsRecordedCost: Number(ledger) === -recordedCost,
    oneStoredTurnPerKey: messages === 2 * ranIds.size,
  };
  report = {
    startedAt: new Date(started).toISOString(), command: `node bench/gateway/duplicates.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    keys, copiesAtOnce: copies, copyJitterMs: jitter, replaysAfter: replays, gateways: gatewayCount, keysInParallel: parallel,
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, loadavg: os.loadavg().map((l) => +l.toFixed(2)) },
    requestsSent: results.reduce((n, r) => n + r.concurrent.length + r.replays.length + r.waitedOn409, 0), sendSeconds, settleSeconds, modes,
    billing: { reservations, usageRecords: records.length, distinctRequestIds: perRequest.size, recordedCostMicros: recordedCost, usageLedgerMicros: Number(ledger), orchestratorMessages: messages },
    checks, passed: Object.values(checks).every(Boolean),
  };
  mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
  writeFileSync(opts.out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(JSON.stringify(report, null, 2));
  if (!report.passed) { console.error(`FAILED: ${Object.entries(checks).filter(([, ok]) => !ok).map(([name]) => name).join(', ')}`); process.exitCode = 1; }
} finally {
  await db.end();
  await chain.stop();
}
