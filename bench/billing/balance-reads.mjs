// The caller's balance, ledger page and invoice preview for tenants with long ledger
// histories: does their cost grow with the number of a tenant's ledger entries?
//
//   (a SEPARATE infra instance, never the shared one: see bench/results/billing.md)
//   set -a; source /tmp/billing-crash/infra.env; set +a; npx tsc -b tsconfig.build.json
//   node bench/billing/balance-reads.mjs --histories 0,10000,100000,1000000 --calls 200 [--dated now|previous-month]
//
// In a database of its own (dropped at the end), one tenant per history size (see
// history-lib.mjs), then VACUUM ANALYZE. For each tenant, `--calls` sequential calls of
// each of billing's own read methods (built dist: BillingQueries.balance, .ledger with a
// page of 50, .invoicePreview), the same ones the gateway's /api/billing routes use.
// Prints p50/p99 per (history, query) and one JSON line.
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { percentile, root, seedTenantHistory, vacuumLedger, withBenchDatabase } from './history-lib.mjs';

const { values: args } = parseArgs({ options: { histories: { type: 'string', default: '0,10000,100000,1000000' }, calls: { type: 'string', default: '200' }, dated: { type: 'string', default: 'now' } } });
if (!['now', 'previous-month'].includes(args.dated)) throw new Error('--dated is now or previous-month');
// previous-month: the whole history before this period, so the invoice preview reads none of it.
const datedAt = args.dated === 'now' ? null : new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 0, 12));
const histories = args.histories.split(',').map(Number);
const CALLS = Number(args.calls);
const { BillingQueries } = createRequire(import.meta.url)(`${root}/services/billing/dist/queries/billing-queries.js`);

await withBenchDatabase('bench_balance', async (pool) => {
  const tenants = [];
  for (const size of histories) tenants.push(await seedTenantHistory(pool, size, 'balance', datedAt));
  await vacuumLedger(pool);
  const queries = new BillingQueries(pool);
  const reads = {
    balance: (tenantId) => queries.balance(tenantId),
    ledger_page: (tenantId) => queries.ledger(tenantId, 50),
    invoice_preview: (tenantId) => queries.invoicePreview(tenantId),
  };
  const results = [];
  for (const tenant of tenants) {
    const expected = 1_000_000_000_000n + BigInt(tenant.size);
    for (const [name, read] of Object.entries(reads)) {
      const samples = [];
      for (let i = 0; i < CALLS; i++) {
        const t0 = performance.now();
        const answer = await read(tenant.tenantId);
        samples.push(performance.now() - t0);
        const balance = answer.balanceMicros ?? answer.closingBalanceMicros;
        if (balance !== expected) throw new Error(`${name} for ${tenant.size} entries: balance ${balance}, expected ${expected}`);
      }
      samples.sort((a, b) => a - b);
      results.push({ ledger_entries: tenant.size, query: name, calls: CALLS, p50_ms: +percentile(samples, 50).toFixed(3), p99_ms: +percentile(samples, 99).toFixed(3), max_ms: +samples.at(-1).toFixed(3) });
    }
  }
  console.table(results);
  console.log(JSON.stringify({ at: new Date().toISOString(), calls: CALLS, dated: args.dated, results }));
});
