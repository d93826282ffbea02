// Reserve for a tenant with budgets against many holds in flight: does the budget check's cost
// grow with the open holds of the request's user and key?
//
//   (a SEPARATE infra instance, never the shared one: see bench/results/billing.md)
//   set -a; source /tmp/billing-crash/infra.env; set +a; npx tsc -b tsconfig.build.json
//   node bench/billing/reserve-budget-holds.mjs --holds 0,1000,10000,50000 --calls 2000 --concurrency 16
//
// In a database of its own (dropped at the end), migrated with billing's migrations, the built
// billing service runs as a child process (its usage consumer off). One tenant per size gets a
// large grant, a tenant, a user and an API key budget (limits far above the load, so every call
// takes the budget path and is admitted), and that many open holds of that user and key. For
// each tenant, turn about:
//   - sequential: `--calls` Reserve calls over gRPC, one after the other (p50/p99);
//   - concurrent: `--calls` calls from `--concurrency` callers at once, all on that one tenant,
//     so they queue on its account row (p50/p99 and calls per second).
// The holds each round takes are released after it, so the open holds stay at the size.
// Prints a table and one JSON line.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { billing } from '@ai-platform/contracts';
import { createGrpcClient } from '@ai-platform/platform';
import { freePort } from '../../infra/local/stack.mjs';
import { spawnBilling, waitReady } from './crash-lib.mjs';
import { alternatingRounds, holdBenchOptions, seedTenantHistory, withBenchDatabase } from './history-lib.mjs';

const { sizes: SIZES, calls: CALLS, concurrency: CONCURRENCY, rounds: ROUNDS } = holdBenchOptions();
const MODEL = 'bench-model';
const USER = 'bench-user';
const KEY = 'bench-key';
const LIMIT = 1_000_000_000_000_000n;

async function seedOpenHolds(pool, tenantId, count) {
  for (let done = 0; done < count; done += 1_000) {
    await pool.query(
      `INSERT INTO billing.reservations (tenant_id, user_id, api_key_id, model, input_tokens, max_output_tokens, input_price_micros, cached_input_price_micros, output_price_micros, amount_micros, expires_at)
       SELECT $1, $3, $4, $5, 10, 10, 100000, 50000, 400000, 5, now() + interval '1 hour' FROM generate_series(1, $2::int)`,
      [tenantId, Math.min(1_000, count - done), USER, KEY, MODEL],
    );
  }
}

async function releaseRound(pool, tenantId, ids) {
  await pool.query(`UPDATE billing.reservations SET status = 'released', closed_at = now(), updated_at = now() WHERE tenant_id = $1 AND id = ANY($2::uuid[])`, [tenantId, ids]);
}

async function round(client, pool, tenantId, calls, callers) {
  const latencies = [];
  const ids = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: callers }, async () => {
    while (next++ < calls) {
      const t0 = performance.now();
      const reservation = await client.reserve({ tenantId, userId: USER, apiKeyId: KEY, requestId: randomUUID(), model: MODEL, inputTokens: 10, maxOutputTokens: 10 });
      latencies.push(performance.now() - t0);
      ids.push(reservation.reservationId);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  await releaseRound(pool, tenantId, ids);
  return { latencies, seconds };
}

await withBenchDatabase('bench_budget_holds', async (pool) => {
  const url = Object.assign(new URL(process.env.DATABASE_URL), { pathname: `/${(await pool.query('SELECT current_database() AS d')).rows[0].d}` }).toString();
  const httpPort = await freePort();
  const grpcPort = await freePort();
  const child = spawnBilling(
    {
      DATABASE_URL: url, HTTP_HOST: '127.0.0.1', HTTP_PORT: String(httpPort), GRPC_PORT: String(grpcPort), USAGE_CONSUMER_ENABLED: 'false', LOG_LEVEL: 'warn',
      MODEL_PRICES_JSON: JSON.stringify([{ model: MODEL, inputMicrosPerMillion: 100_000, cachedInputMicrosPerMillion: 50_000, outputMicrosPerMillion: 400_000 }]),
    },
    (chunk) => process.stderr.write(chunk),
  );
  const client = createGrpcClient(billing.BillingService, `127.0.0.1:${grpcPort}`, { defaultTimeoutMs: 30_000 });
  try {
    await waitReady(`http://127.0.0.1:${httpPort}/readyz`, child, 120_000);
    const tenants = [];
    for (const size of SIZES) {
      const { tenantId } = await seedTenantHistory(pool, 0, 'budget-holds');
      await client.setBudget({ budget: { tenantId, scope: 'tenant', period: 'month', limitMicros: LIMIT, hardLimitPercent: 100 } });
      await client.setBudget({ budget: { tenantId, scope: 'user', subject: USER, period: 'day', limitMicros: LIMIT, hardLimitPercent: 100 } });
      await client.setBudget({ budget: { tenantId, scope: 'api_key', subject: KEY, period: 'day', limitMicros: LIMIT, hardLimitPercent: 100 } });
      await seedOpenHolds(pool, tenantId, size);
      tenants.push({ size, tenantId });
    }
    await pool.query('VACUUM ANALYZE billing.reservations');
    await pool.query('VACUUM ANALYZE billing.accounts');
    for (const tenant of tenants) await round(client, pool, tenant.tenantId, 100, 1); // warm-up: plans, caches, JIT
    const results = await alternatingRounds({
      tenants, rounds: ROUNDS, calls: CALLS, concurrency: CONCURRENCY,
      run: (tenant, mode, calls) => round(client, pool, tenant.tenantId, calls, mode === 'sequential' ? 1 : CONCURRENCY),
    });
    console.table(results);
    console.log(JSON.stringify({ at: new Date().toISOString(), bench: 'reserve-budget-holds', calls: CALLS, concurrency: CONCURRENCY, rounds: ROUNDS, results }));
  } finally {
    client.close();
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
  }
});
