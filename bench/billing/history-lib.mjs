// Shared by the history benchmarks: a database of its own, migrated with billing's
// migrations, and tenants whose ledgers already hold a given number of entries.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { createLogger, createPool, migrate } from '@ai-platform/platform';

export const root = path.resolve(import.meta.dirname, '../..');
export const migrations = path.join(root, 'services/billing/migrations');
export const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** Runs `body(pool)` in a fresh, migrated database that is dropped afterwards. */
export async function withBenchDatabase(prefix, body) {
  if (/:55432\//.test(process.env.DATABASE_URL ?? '')) throw new Error('refusing to run on the shared database (port 55432): use a separate infra instance');
  const database = `${prefix}_${randomUUID().slice(0, 8)}`;
  const admin = createPool(process.env.DATABASE_URL, { applicationName: 'billing-bench-admin', max: 1 });
  await admin.query(`CREATE DATABASE ${database}`);
  const pool = createPool(Object.assign(new URL(process.env.DATABASE_URL), { pathname: `/${database}` }).toString(), { applicationName: 'billing-bench', max: 2 });
  try {
    await migrate(pool, 'billing', migrations, createLogger('bench', 'error'));
    return await body(pool);
  } finally {
    await pool.end();
    await admin.query(`DROP DATABASE ${database} WITH (FORCE)`);
    await admin.end();
  }
}

/**
 * A tenant account with a large grant and then `size` ledger transactions
 * (each +1 µ to the tenant, −1 µ from the grants account), committed at once,
 * dated now or `datedAt`.
 */
export async function seedTenantHistory(pool, size, label = 'history', datedAt = null) {
  const tenantId = `${label}-${size}-${randomUUID().slice(0, 8)}`;
  const started = performance.now();
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SET LOCAL statement_timeout = 0');
    await client.query(`SELECT set_config('app.tenant_id', $1, true)`, [tenantId]);
    const { rows } = await client.query(`INSERT INTO billing.accounts (kind, tenant_id) VALUES ('tenant', $1) RETURNING id`, [tenantId]);
    const account = rows[0].id;
    const grants = (await client.query(`SELECT id FROM billing.accounts WHERE system_code = 'grants'`)).rows[0].id;
    await client.query(
      `WITH t AS (
         INSERT INTO billing.ledger_transactions (tenant_id, kind, reference)
         SELECT $1, 'manual_adjustment', $1 || ':' || n FROM generate_series(0, $3::int) AS n RETURNING id, reference)
       INSERT INTO billing.ledger_entries (transaction_id, tenant_id, account_id, amount_micros, created_at)
       SELECT t.id, $1, a.account, CASE WHEN t.reference = $1 || ':0' THEN a.sign * 1000000000000 ELSE a.sign END, coalesce($5::timestamptz, now())
         FROM t CROSS JOIN (VALUES ($2::uuid, 1), ($4::uuid, -1)) AS a(account, sign)`,
      [tenantId, account, size, grants, datedAt],
    );
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  const seedSeconds = (performance.now() - started) / 1000;
  console.error(`seeded ${size} entries for ${tenantId} in ${seedSeconds.toFixed(1)} s`);
  return { size, tenantId, seedSeconds };
}

/** VACUUM ANALYZE, so a query that sums entries gets its best case (index-only scans). */
export async function vacuumLedger(pool) {
  const client = await pool.connect();
  try {
    await client.query('SET statement_timeout = 0');
    await client.query('VACUUM ANALYZE billing.ledger_entries');
    await client.query('VACUUM ANALYZE billing.accounts');
    await client.query('RESET statement_timeout');
  } finally {
    client.release();
  }
}

/**
 * Rounds over `tenants` (each `{ size, tenantId }`), each tenant measured 'sequential' and
 * 'concurrent' in an order that alternates per round, `run(tenant, mode, calls)` returning
 * `{ latencies, seconds }`. Returns one result per tenant and mode: p50/p99/max and calls per second.
 */
export async function alternatingRounds({ tenants, rounds, calls, concurrency, run }) {
  const samples = new Map();
  for (let round = 0; round < rounds; round++) {
    for (const tenant of tenants) {
      for (const mode of round % 2 === 0 ? ['sequential', 'concurrent'] : ['concurrent', 'sequential']) {
        const key = `${tenant.size}/${mode}`;
        const entry = samples.get(key) ?? { latencies: [], seconds: 0 };
        const result = await run(tenant, mode, calls / rounds);
        entry.latencies.push(...result.latencies);
        entry.seconds += result.seconds;
        samples.set(key, entry);
      }
    }
  }
  return tenants.flatMap((tenant) =>
    ['sequential', 'concurrent'].map((mode) => {
      const entry = samples.get(`${tenant.size}/${mode}`);
      const sorted = entry.latencies.sort((a, b) => a - b);
      return {
        open_holds: tenant.size, mode: mode === 'concurrent' ? `${concurrency} at once` : mode, calls: sorted.length,
        p50_ms: +percentile(sorted, 50).toFixed(3), p99_ms: +percentile(sorted, 99).toFixed(3), max_ms: +sorted.at(-1).toFixed(3),
        calls_per_second: Math.round(sorted.length / entry.seconds),
      };
    }),
  );
}

/** The options both hold benchmarks take: --holds (sizes), --calls, --concurrency, --rounds. */
export function holdBenchOptions() {
  const { values } = parseArgs({
    options: { holds: { type: 'string', default: '0,1000,10000,50000' }, calls: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '16' }, rounds: { type: 'string', default: '2' } },
  });
  return { sizes: values.holds.split(',').map(Number), calls: Number(values.calls), concurrency: Number(values.concurrency), rounds: Number(values.rounds) };
}
