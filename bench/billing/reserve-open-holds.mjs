// Reserve against tenants with many holds in flight: does its cost grow with the number of
// a tenant's open holds (a large API customer with thousands of requests running at once)?
//
//   (a SEPARATE infra instance, never the shared one: see bench/results/billing.md)
//   set -a; source /tmp/billing-crash/infra.env; set +a; npx tsc -b tsconfig.build.json
//   node bench/billing/reserve-open-holds.mjs --holds 0,1000,10000,50000 --calls 2000 --concurrency 16
//
// In a database of its own (dropped at the end), migrated with billing's migrations, one tenant
// per size gets a large grant and that many open holds (status 'held', expiring in an hour).
// For each tenant, turn about:
//   - sequential: `--calls` calls of billing.reserve_hold, one after the other (p50/p99);
//   - concurrent: `--calls` calls from `--concurrency` connections at once, all on that one
//     tenant, so they queue on its account row (p50/p99 and calls per second).
// The holds each round takes are released after it, so the open holds stay at the size.
// Prints a table and one JSON line.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createPool } from '@ai-platform/platform';
import { alternatingRounds, holdBenchOptions, seedTenantHistory, withBenchDatabase } from './history-lib.mjs';

const { sizes: SIZES, calls: CALLS, concurrency: CONCURRENCY, rounds: ROUNDS } = holdBenchOptions();
const TEXT = 'SELECT * FROM billing.reserve_hold($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)';
const callArgs = (tenantId) => [tenantId, 'user', 'key', randomUUID(), 'bench-model', 10, 10, 100000, 50000, 400000, 5, 3600, null];

// In statements of 1,000: each inserted hold updates the account row (migration 010), and one
// statement making tens of thousands of versions of one row walks an ever longer chain.
async function seedOpenHolds(pool, tenantId, count) {
  for (let done = 0; done < count; done += 1_000) {
    await pool.query(
      `INSERT INTO billing.reservations (tenant_id, model, input_tokens, max_output_tokens, input_price_micros, cached_input_price_micros, output_price_micros, amount_micros, expires_at)
       SELECT $1, 'bench-model', 10, 10, 100000, 50000, 400000, 5, now() + interval '1 hour' FROM generate_series(1, $2::int)`,
      [tenantId, Math.min(1_000, count - done)],
    );
  }
}

async function releaseRound(pool, tenantId, ids) {
  await pool.query(`UPDATE billing.reservations SET status = 'released', closed_at = now(), updated_at = now() WHERE tenant_id = $1 AND id = ANY($2::uuid[])`, [tenantId, ids]);
}

async function sequential(pool, tenantId, calls) {
  const latencies = [];
  const ids = [];
  const started = performance.now();
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    const { rows } = await pool.query({ name: 'reserve', text: TEXT, values: callArgs(tenantId) });
    latencies.push(performance.now() - t0);
    if (rows[0].outcome !== 'held') throw new Error(`reserve: ${rows[0].outcome}`);
    ids.push(rows[0].reservation_id);
  }
  const seconds = (performance.now() - started) / 1000;
  await releaseRound(pool, tenantId, ids);
  return { latencies, seconds };
}

async function concurrent(pool, tenantId, calls) {
  const latencies = [];
  const ids = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next++ < calls) {
      const t0 = performance.now();
      const { rows } = await pool.query({ name: 'reserve', text: TEXT, values: callArgs(tenantId) });
      latencies.push(performance.now() - t0);
      if (rows[0].outcome !== 'held') throw new Error(`reserve: ${rows[0].outcome}`);
      ids.push(rows[0].reservation_id);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  await releaseRound(pool, tenantId, ids);
  return { latencies, seconds };
}

await withBenchDatabase('bench_open_holds', async (setupPool) => {
  const url = Object.assign(new URL(process.env.DATABASE_URL), { pathname: `/${(await setupPool.query('SELECT current_database() AS d')).rows[0].d}` }).toString();
  const pool = createPool(url, { applicationName: 'billing-bench', max: CONCURRENCY });
  try {
    const tenants = [];
    for (const size of SIZES) {
      const { tenantId } = await seedTenantHistory(setupPool, 0, 'holds');
      await seedOpenHolds(setupPool, tenantId, size);
      tenants.push({ size, tenantId });
    }
    await setupPool.query('VACUUM ANALYZE billing.reservations');
    await setupPool.query('VACUUM ANALYZE billing.accounts');
    for (const tenant of tenants) await sequential(pool, tenant.tenantId, 100); // warm-up: plans, caches
    const results = await alternatingRounds({
      tenants, rounds: ROUNDS, calls: CALLS, concurrency: CONCURRENCY,
      run: (tenant, mode, calls) => (mode === 'sequential' ? sequential : concurrent)(pool, tenant.tenantId, calls),
    });
    console.table(results);
    console.log(JSON.stringify({ at: new Date().toISOString(), calls: CALLS, concurrency: CONCURRENCY, rounds: ROUNDS, results }));
  } finally {
    await pool.end();
  }
});
