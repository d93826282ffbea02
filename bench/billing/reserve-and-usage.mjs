// Billing benchmark: Reserve latency at a fixed request rate, and usage events
// applied to the ledger per second, for a given number of tenants.
//
//   (a SEPARATE infra instance, never the shared one: see bench/results/billing.md)
//   set -a; source /tmp/billing-crash/infra.env; set +a; npx tsc -b tsconfig.build.json
//   node bench/billing/reserve-and-usage.mjs --tenants 1000 --events 100000 --rps 500 --seconds 10
//
// Billing runs as a child process (built dist/main.js) on its own usage topic and
// consumer group. Phase 1 produces a backlog of usage events (no reservation, one of N
// tenants each) BEFORE billing starts, then times billing draining it: events
// applied per second, sustained, from the first applied chunk to the last.
// Phase 2 calls Reserve over gRPC, open loop at --rps (each call sent at its
// scheduled time whatever the previous ones did), tenants round-robin, and
// reports p50/p99/max of the latencies. Prints one JSON line.
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { create, toJsonString } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { billing, EventTypes, events } from '@ai-platform/contracts';
import { createGrpcClient, createKafka, createLogger, createPool, ensureTopics, EventPublisher } from '@ai-platform/platform';
import { freePort } from '../../infra/local/stack.mjs';
import { spawnBilling, waitReady } from './crash-lib.mjs';

const { values: args } = parseArgs({
  options: { tenants: { type: 'string', default: '1000' }, events: { type: 'string', default: '100000' }, rps: { type: 'string', default: '500' }, seconds: { type: 'string', default: '10' }, 'warmup-seconds': { type: 'string', default: '1' } },
});
if (/:55432\//.test(process.env.DATABASE_URL ?? '')) throw new Error('refusing to run on the shared database (port 55432): use a separate infra instance');
const TENANTS = Number(args.tenants);
const EVENTS = Number(args.events);
const RPS = Number(args.rps);
const SECONDS = Number(args.seconds);
const MODEL = 'bench-model';
const run = randomUUID().slice(0, 8);
const topic = `bench.usage.events.v1.${run}`;
const group = `billing-bench-${run}`;
const tenantOf = (i) => `bench-${run}-${i % TENANTS}`;
const CLOCK_TICKS = 100; // USER_HZ on Linux
/** utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15). */
function processCpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0; // gone meanwhile
  }
}
/** CPU of this instance's Postgres server processes (children of the postmaster in PGDATA/postmaster.pid). */
function postgresCpuSeconds() {
  const dataDir = path.join(process.env.PLATFORM_LOCAL_DIR ?? '', 'pg');
  let postmaster;
  try {
    postmaster = readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0].trim();
  } catch {
    return NaN; // not a local instance of infra/local
  }
  let total = processCpuSeconds(postmaster);
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      if (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1] === postmaster) total += processCpuSeconds(pid);
    } catch {
      // exited between listing and reading
    }
  }
  return total;
}
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

const kafka = createKafka(process.env.KAFKA_BROKERS.split(','), `billing-bench-${run}`, createLogger('bench', 'error'));
await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
const publisher = new EventPublisher(kafka);
await publisher.connect();

// Phase 1a: the backlog.
let expectedMicros = 0n;
const produceStart = performance.now();
for (let from = 0; from < EVENTS; from += 2_000) {
  const batch = [];
  for (let i = from; i < Math.min(EVENTS, from + 2_000); i++) {
    const output = 1 + (i % 50);
    expectedMicros += BigInt(Math.ceil((output * 400_000) / 1_000_000)) + BigInt(Math.ceil((10 * 100_000) / 1_000_000));
    const now = new Date();
    const event = create(events.UsageEventSchema, {
      eventId: randomUUID(), tenantId: tenantOf(i), userId: 'u', apiKeyId: 'k', requestId: `r${i}`, model: MODEL, inputTokens: 10, outputTokens: output,
      status: events.UsageStatus.COMPLETED, startedAt: timestampFromDate(now), finishedAt: timestampFromDate(now),
    });
    batch.push({ id: event.eventId, type: EventTypes.usageRecorded, source: 'billing-bench', key: event.tenantId, data: toJsonString(events.UsageEventSchema, event) });
  }
  await publisher.publish(topic, batch);
}
const produceSeconds = (performance.now() - produceStart) / 1000;
await publisher.disconnect();

// Phase 1b: billing starts and drains it.
Object.assign(process.env, {
  NODE_ENV: 'production', LOG_LEVEL: 'warn', HTTP_PORT: '0', GRPC_PORT: '0', DATABASE_POOL_MAX: '20',
  SIGNUP_GRANT_CREDITS: '1000000', KAFKA_CONSUMER_GROUP: group, USAGE_TOPIC: topic, USAGE_DLQ_TOPIC: `${topic}.dlq`,
  MODEL_PRICES_JSON: JSON.stringify([{ model: MODEL, inputMicrosPerMillion: 100_000, cachedInputMicrosPerMillion: 25_000, outputMicrosPerMillion: 400_000 }]),
  RESERVATION_TTL_SECONDS: '3600',
});
// Billing runs as its own process (built dist), as in production: the benchmark's own
// event loop (producer, gRPC client, pacing) does not share a thread with it.
const httpPort = await freePort();
const grpcPort = await freePort();
const pool = createPool(process.env.DATABASE_URL, { applicationName: 'billing-bench', max: 2 });
const billingProcess = spawnBilling({ ...process.env, HTTP_HOST: '127.0.0.1', HTTP_PORT: String(httpPort), GRPC_PORT: String(grpcPort) }, (chunk) => process.stderr.write(chunk));
await waitReady(`http://127.0.0.1:${httpPort}/readyz`, billingProcess, 120_000);
const running = { grpcPort, shutdown: async () => { billingProcess.kill('SIGTERM'); await new Promise((resolve) => billingProcess.once('exit', resolve)); } };
// Progress from the group's committed offsets (committed only after each chunk's transaction):
// cheap for the broker, where counting processed_events rows would load the Postgres being measured.
const admin = kafka.admin();
await admin.connect();
const committed = async () => (await admin.fetchOffsets({ groupId: group, topics: [topic] }))[0].partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
const cpuBefore = { billing: processCpuSeconds(billingProcess.pid), postgres: postgresCpuSeconds() };
const consumeStart = performance.now();
let firstApplied;
let applied = 0;
while (applied < EVENTS) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  applied = await committed();
  if (applied > 0 && firstApplied === undefined) firstApplied = { at: performance.now(), applied };
}
const drainEnd = performance.now();
const cpu = { billing: processCpuSeconds(billingProcess.pid) - cpuBefore.billing, postgres: postgresCpuSeconds() - cpuBefore.postgres };
await admin.disconnect();
const { rows: totals } = await pool.query(`SELECT count(*) AS n, coalesce(sum(cost_micros), 0)::text AS cost FROM billing.usage_records WHERE tenant_id LIKE $1`, [`bench-${run}-%`]);
const { rows: ledger } = await pool.query(
  `SELECT coalesce(-sum(e.amount_micros), 0)::text AS charged FROM billing.ledger_entries e JOIN billing.accounts a ON a.id = e.account_id JOIN billing.ledger_transactions t ON t.id = e.transaction_id
    WHERE a.tenant_id LIKE $1 AND t.kind = 'usage'`,
  [`bench-${run}-%`],
);

// Phase 2: Reserve at a fixed rate, after a CHECKPOINT (when permitted) so that it does
// not pay for flushing the backlog's dirty pages (the two targets are measured apart).
const checkpoint = await pool.query('CHECKPOINT').then(() => true, () => false);
const client = createGrpcClient(billing.BillingService, `127.0.0.1:${running.grpcPort}`, { defaultTimeoutMs: 10_000 });
const total = RPS * SECONDS;
// One paced phase of `count` calls; the first (--warmup-seconds, default 1 s, not
// measured) lets the connection pool fill and the code warm up, as a running service is.
async function phase(count, offset) {
  const latencies = [];
  let errors = 0;
  const start = performance.now();
  const calls = [];
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / RPS;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const sent = performance.now();
    calls.push(
      client
        .reserve({ tenantId: tenantOf(offset + i), userId: 'u', apiKeyId: 'k', requestId: `q${offset + i}`, model: MODEL, inputTokens: 100, maxOutputTokens: 100 })
        .then(() => latencies.push(performance.now() - sent), () => errors++),
    );
  }
  await Promise.all(calls);
  return { latencies, errors, achieved: count / ((performance.now() - start) / 1000) };
}
const warmup = Math.round(RPS * Number(args['warmup-seconds']));
if (warmup > 0) await phase(warmup, 0);
const { latencies, errors, achieved } = await phase(total, warmup);
latencies.sort((a, b) => a - b);
client.close();
// Billing's own view of the same calls (warm-up included): where the tail is spent, in the server or around it.
const serverSide = await fetch(`http://127.0.0.1:${httpPort}/metrics`).then((response) => response.text()).then((text) => {
  const buckets = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('grpc_server_handling_seconds_bucket{') || !/method="[^"]*Reserve"/.test(line)) continue;
    buckets[/le="([^"]+)"/.exec(line)[1]] = Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  const total = buckets['+Inf'] ?? 0;
  return total ? Object.fromEntries(['0.001', '0.0025', '0.005', '0.01'].map((le) => [`le_${Number(le) * 1000}ms`, +((buckets[le] ?? 0) / total).toFixed(4)])) : undefined;
}, () => undefined);
await running.shutdown('bench finished');
await pool.end();

const result = {
  tenants: TENANTS,
  events: EVENTS,
  produce_seconds: +produceSeconds.toFixed(2),
  usage_applied: applied,
  usage_drain_seconds: +((drainEnd - consumeStart) / 1000).toFixed(2),
  usage_events_per_second_sustained: Math.round((applied - (firstApplied?.applied ?? 0)) / ((drainEnd - (firstApplied?.at ?? consumeStart)) / 1000)),
  usage_cpu_us_per_event: { billing: Math.round((cpu.billing * 1e6) / EVENTS), postgres: Math.round((cpu.postgres * 1e6) / EVENTS) },
  usage_records: Number(totals[0].n),
  usage_cost_micros: totals[0].cost,
  ledger_usage_micros: ledger[0].charged,
  expected_micros: expectedMicros.toString(),
  reserve_target_rps: RPS,
  reserve_achieved_rps: Math.round(achieved),
  reserve_calls: total,
  reserve_warmup_calls: warmup,
  checkpoint_before_reserve: checkpoint,
  reserve_errors: errors,
  reserve_p50_ms: +percentile(latencies, 50).toFixed(2),
  reserve_p99_ms: +percentile(latencies, 99).toFixed(2),
  reserve_server_share_within: serverSide,
  reserve_max_ms: +latencies.at(-1).toFixed(2),
};
console.log(JSON.stringify(result));
process.exit(0);
