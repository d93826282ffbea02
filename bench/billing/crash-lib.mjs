// Shared by bench/billing/crash-safety.mjs and services/billing/test/crash-safety.test.ts:
// usage events with known costs, the billing service as a child process that can be
// SIGKILLed, and the check that the ledger equals the distinct events exactly.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { create, toJsonString } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { EventTypes, events } from '@ai-platform/contracts';
import { costMicros } from '@ai-platform/pricing';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CRASH_MODEL = 'crash-model';
export const CRASH_PRICE = { model: CRASH_MODEL, inputMicrosPerMillion: 100_000, cachedInputMicrosPerMillion: 25_000, outputMicrosPerMillion: 400_000 };

/**
 * `count` usage events over `tenants` tenants (ids `<prefix>-<n>`), as CloudEvents for
 * EventPublisher, plus every `duplicateEvery`-th event sent again later (same id, same
 * payload). Returns the messages in send order and the expected cost per tenant
 * (recomputed from the price, each distinct event once).
 */
export function makeUsageEvents({ count, tenants, prefix, duplicateEvery = 50 }) {
  const messages = [];
  const expected = new Map();
  const ids = new Set();
  const now = new Date();
  for (let i = 0; i < count; i++) {
    const tenantId = `${prefix}-${i % tenants}`;
    const inputTokens = 5 + (i % 97);
    const cachedInputTokens = i % 3 === 0 ? Math.floor(inputTokens / 2) : 0;
    const outputTokens = 1 + ((i * 7) % 113);
    const event = create(events.UsageEventSchema, {
      eventId: randomUUID(), tenantId, userId: `u${i % 7}`, apiKeyId: `k${i % 5}`, requestId: `req-${i}`, model: CRASH_MODEL,
      inputTokens, cachedInputTokens, outputTokens, status: events.UsageStatus.COMPLETED, startedAt: timestampFromDate(now), finishedAt: timestampFromDate(now),
    });
    const message = { id: event.eventId, type: EventTypes.usageRecorded, source: 'billing-crash-safety', key: tenantId, data: toJsonString(events.UsageEventSchema, event) };
    messages.push(message);
    ids.add(event.eventId);
    expected.set(tenantId, (expected.get(tenantId) ?? 0n) + BigInt(costMicros(CRASH_PRICE, { inputTokens, cachedInputTokens, outputTokens })));
    // A duplicate re-sent on purpose, some way behind the original (another chunk, often another billing process).
    if (i % duplicateEvery === duplicateEvery - 1) messages.splice(Math.max(0, messages.length - 1 - (i % 1500)), 0, { ...messages[Math.max(0, messages.length - 1 - ((i * 13) % 700))] });
  }
  return { messages, ids, expected };
}

/** The built billing service (services/billing/dist/main.js) as a child process. */
export function spawnBilling(env, onOutput = () => {}) {
  const child = spawn(process.execPath, [...(process.env.BILLING_NODE_FLAGS ? process.env.BILLING_NODE_FLAGS.split(" ").filter(Boolean) : []), path.join(repoRoot, 'services/billing/dist/main.js')], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', onOutput);
  child.stderr.on('data', onOutput);
  return child;
}

export async function waitReady(url, child, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`billing exited before it was ready (${child.exitCode ?? child.signalCode})`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`billing not ready at ${url} within ${timeoutMs} ms`);
}

export function sigkill(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  return exited;
}

/** How many of the run's events are recorded so far. */
export async function recordedCount(pool, prefix) {
  const { rows } = await pool.query(`SELECT count(*)::int AS n FROM billing.usage_records WHERE tenant_id LIKE $1`, [`${prefix}-%`]);
  return rows[0].n;
}

/**
 * Compares what billing stored with what was produced: per tenant and in total, the
 * usage charged on the ledger and the usage records' costs equal the distinct events'
 * recomputed costs; every distinct event id is recorded exactly once, none unknown.
 */
export async function verifyLedger(pool, { prefix, ids, expected, group }) {
  const like = `${prefix}-%`;
  const records = await pool.query(`SELECT tenant_id, count(*)::int AS n, sum(cost_micros)::text AS cost FROM billing.usage_records WHERE tenant_id LIKE $1 GROUP BY tenant_id`, [like]);
  const ledger = await pool.query(
    `SELECT a.tenant_id, (-sum(e.amount_micros))::text AS charged FROM billing.ledger_entries e JOIN billing.accounts a ON a.id = e.account_id
       JOIN billing.ledger_transactions t ON t.id = e.transaction_id WHERE a.tenant_id LIKE $1 AND t.kind = 'usage' GROUP BY a.tenant_id`,
    [like],
  );
  const stored = await pool.query(`SELECT event_id FROM billing.usage_records WHERE tenant_id LIKE $1`, [like]);
  const processed = await pool.query(`SELECT outcome, count(*)::int AS n FROM billing.processed_events WHERE consumer_group = $1 GROUP BY outcome`, [group]);
  const storedIds = new Set(stored.rows.map((row) => row.event_id));
  const missing = [...ids].filter((id) => !storedIds.has(id)).length;
  const unknown = [...storedIds].filter((id) => !ids.has(id)).length;
  const ledgerBy = new Map(ledger.rows.map((row) => [row.tenant_id, BigInt(row.charged)]));
  const recordBy = new Map(records.rows.map((row) => [row.tenant_id, BigInt(row.cost)]));
  const tenantMismatches = [];
  for (const [tenant, micros] of expected) {
    if (ledgerBy.get(tenant) !== micros || recordBy.get(tenant) !== micros) tenantMismatches.push({ tenant, expected: String(micros), ledger: String(ledgerBy.get(tenant)), records: String(recordBy.get(tenant)) });
  }
  const sum = (values) => [...values].reduce((a, b) => a + b, 0n);
  return {
    distinct_events: ids.size,
    usage_records: stored.rows.length,
    processed_events: Object.fromEntries(processed.rows.map((row) => [row.outcome, row.n])),
    missing,
    unknown,
    expected_total_micros: String(sum(expected.values())),
    ledger_usage_total_micros: String(sum(ledgerBy.values())),
    records_total_micros: String(sum(recordBy.values())),
    tenants: expected.size,
    tenant_mismatches: tenantMismatches.length,
    first_mismatches: tenantMismatches.slice(0, 3),
    exact: missing === 0 && unknown === 0 && stored.rows.length === ids.size && tenantMismatches.length === 0 && ledgerBy.size === expected.size,
  };
}

/** Removes what a run left for Stripe (pending meter values of its tenants): no other billing should report them. */
export async function dropMeterPending(pool, prefix) {
  await pool.query(`DELETE FROM billing.meter_pending WHERE tenant_id LIKE $1`, [`${prefix}-%`]);
}
