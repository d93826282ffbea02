// Reserve against tenants with long ledger histories: does its cost grow with the
// number of a tenant's ledger entries?
//
//   (a SEPARATE infra instance, never the shared one: see bench/results/billing.md)
//   set -a; source /tmp/billing-crash/infra.env; set +a; npx tsc -b tsconfig.build.json
//   node bench/billing/reserve-history.mjs --histories 0,10000,100000,500000 --calls 2000
//
// In a database of its own (dropped at the end), migrated with billing's migrations, one
// tenant per history size gets that many ledger transactions (each: +1 µ to the tenant,
// −1 µ from the grants account) on top of a large grant, then VACUUM ANALYZE, so the old
// way of reading the balance gets its best case (index-only scans, all-visible pages).
// For each tenant, in the same run and turn about, `--calls` sequential calls of:
//   - billing.reserve_hold as migrated (balance read from the locked account row);
//   - the same function as migration 003 had it (balance = sum of the account's entries),
//     created here as bench_reserve_hold_summing.
// Holds taken are released between rounds so open holds stay the same for both.
// Prints p50/p99 per (history, variant) and one JSON line.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { migrations, percentile, seedTenantHistory, vacuumLedger, withBenchDatabase } from './history-lib.mjs';

const { values: args } = parseArgs({
  options: { histories: { type: 'string', default: '0,10000,100000,500000' }, calls: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '4' } },
});
const histories = args.histories.split(',').map(Number);
const CALLS = Number(args.calls);
const ROUNDS = Number(args.rounds);

await withBenchDatabase('bench_history', async (pool) => {
  // Migration 003's reserve_hold, as it was before the balance moved onto the account row.
  const original = readFileSync(path.join(migrations, '003_reserve_in_one_round_trip.sql'), 'utf8');
  await pool.query(original.slice(original.indexOf('CREATE FUNCTION reserve_hold(')).replace('CREATE FUNCTION reserve_hold(', 'CREATE FUNCTION billing.bench_reserve_hold_summing('));

  const tenants = [];
  for (const size of histories) tenants.push(await seedTenantHistory(pool, size));
  await vacuumLedger(pool);

  const callArgs = (tenantId) => [tenantId, 'user', 'key', randomUUID(), 'bench-model', 10, 10, 100000, 50000, 400000, 5, 600, null];
  const samples = new Map();
  for (let round = 0; round < ROUNDS; round++) {
    for (const tenant of tenants) {
      for (const variant of round % 2 === 0 ? ['row', 'summing'] : ['summing', 'row']) {
        const fn = variant === 'row' ? 'billing.reserve_hold' : 'billing.bench_reserve_hold_summing';
        const text = `SELECT * FROM ${fn}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`;
        const key = `${tenant.size}/${variant}`;
        const list = samples.get(key) ?? [];
        for (let i = 0; i < CALLS / ROUNDS; i++) {
          const t0 = performance.now();
          const { rows } = await pool.query({ name: variant, text, values: callArgs(tenant.tenantId) });
          list.push(performance.now() - t0);
          if (rows[0].outcome !== 'held') throw new Error(`${key}: ${rows[0].outcome}`);
        }
        samples.set(key, list);
        await pool.query(`UPDATE billing.reservations SET status = 'released', closed_at = now(), updated_at = now() WHERE tenant_id = $1 AND status = 'held'`, [tenant.tenantId]);
      }
    }
  }
  const results = [];
  for (const tenant of tenants) {
    for (const variant of ['row', 'summing']) {
      const sorted = samples.get(`${tenant.size}/${variant}`).sort((a, b) => a - b);
      results.push({ ledger_entries: tenant.size, balance_read: variant === 'row' ? 'account row (now)' : 'sum of entries (before)', calls: sorted.length, p50_ms: +percentile(sorted, 50).toFixed(3), p99_ms: +percentile(sorted, 99).toFixed(3), max_ms: +sorted.at(-1).toFixed(3) });
    }
  }
  console.table(results);
  console.log(JSON.stringify({ at: new Date().toISOString(), calls_per_variant: CALLS, rounds: ROUNDS, results }));
});
