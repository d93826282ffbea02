// Billing benchmark: Reserve latency at a fixed request rate, and usage events
// applied to the ledger per second, for a given number of tenants.
//
//   (a SEPARATE infra instance, never the shared one: see bench/results/billing.md)
//   set -a; source /tmp/billing-crash/infra.env; set +a; npx tsc -b tsconfig.build.json
//   node bench/billing/reserve-and-usage.mjs --tenants 1000 --events 100000 --rps 500 --seconds 30 --warmup-seconds 5 --existing-accounts
//
// Billing runs as a child process (built dist/main.js) on its own usage topic and
// consumer group. With --existing-accounts, phase 0 first drains one event per tenant in
// a billing process of its own (reported apart as first touches). Phase 1 produces a backlog of usage events (no reservation, one of N
// tenants each) BEFORE billing starts, then times billing draining it: events
// applied per second, sustained, from the first applied chunk to the last.
// Phase 2 calls Reserve over gRPC, open loop at --rps, tenants round-robin, from
// each load generator of --clients in turn (ghz and a Node client by default), and
// reports p50/p99/max of the latencies, billing's own share of calls answered within
// 1/2.5/5/10 ms and the CPU per call. With --usage-during-reserve N, usage events keep arriving
// at N/s through phase 2 (Reserve and the consumer share billing's event loop, as in
// production); at the end they must all be settled and the ledger equal their sum. With
// --reserve-apart, Reserve goes to a second billing process that does not consume usage.
// BENCH_USAGE_TICK_MS (default 100) is how often that usage is sent: 100 ms = batches of N/10.
// BENCH_USAGE_TENANT_OFFSET shifts the tenants of that usage away from the ones Reserve calls
// at the same moment (both walk the tenants in order at their rates).
// Each run uses a database of its own, dropped at the end (--keep-database keeps it).
// Prints one JSON line.
// Diagnostics: BILLING_NODE_FLAGS passes flags to billing's node (say --trace-gc);
// BENCH_LOG_SLOW_MS logs the run database's statements slower than that to Postgres' log;
// BENCH_AUTO_EXPLAIN_MS logs their plans with timings (auto_explain, superuser only).
import { randomUUID } from 'node:crypto';
import { execFile, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs, promisify } from 'node:util';
import { billing } from '@ai-platform/contracts';
import { createGrpcClient, createKafka, createLogger, createPool, ensureTopics } from '@ai-platform/platform';
import { freePort } from '../../infra/local/stack.mjs';
import { spawnBilling, waitReady } from './crash-lib.mjs';
import { usageProducers } from './usage-producer-lib.mjs';

const { values: args } = parseArgs({
  options: {
    tenants: { type: 'string', default: '1000' }, events: { type: 'string', default: '100000' }, 'existing-accounts': { type: 'boolean', default: false },
    rps: { type: 'string', default: '500' }, seconds: { type: 'string', default: '10' }, 'warmup-seconds': { type: 'string', default: '1' },
    clients: { type: 'string', default: 'ghz,node' }, 'keep-database': { type: 'boolean', default: false },
    'usage-during-reserve': { type: 'string', default: '0' }, 'reserve-apart': { type: 'boolean', default: false },
  },
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
// Each run gets a database of its own: holds left open by earlier runs expire later, and the
// expiry sweeper settling them (locking the same accounts) would otherwise be measured too.
const database = `bench_${run}`;
{
  const admin = createPool(process.env.DATABASE_URL, { applicationName: 'billing-bench-admin', max: 1 });
  await admin.query(`CREATE DATABASE ${database}`);
  if (process.env.BENCH_LOG_SLOW_MS) await admin.query(`ALTER DATABASE ${database} SET log_min_duration_statement = ${Number(process.env.BENCH_LOG_SLOW_MS)}`);
  if (process.env.BENCH_AUTO_EXPLAIN_MS) {
    // Plans (with timings, and the statements of triggers) of the run database's statements slower than that, to Postgres' log.
    for (const setting of [`session_preload_libraries = 'auto_explain'`, `auto_explain.log_min_duration = ${Number(process.env.BENCH_AUTO_EXPLAIN_MS)}`,
      `auto_explain.log_analyze = on`, `auto_explain.log_buffers = on`, `auto_explain.log_nested_statements = on`, `auto_explain.log_triggers = on`]) {
      await admin.query(`ALTER DATABASE ${database} SET ${setting}`);
    }
  }
  await admin.end();
}
const sharedDatabaseUrl = process.env.DATABASE_URL;
process.env.DATABASE_URL = Object.assign(new URL(sharedDatabaseUrl), { pathname: `/${database}` }).toString();
const execFileAsync = promisify(execFile);
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

const kafka = createKafka(process.env.KAFKA_BROKERS.split(','), `billing-bench-${run}`, createLogger('bench', 'error'));
await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);

const { produce, steadyUsage } = usageProducers({ kafka, tenantOf, model: MODEL, tickMs: Number(process.env.BENCH_USAGE_TICK_MS ?? 100) });

Object.assign(process.env, {
  NODE_ENV: 'production', LOG_LEVEL: 'warn', HTTP_PORT: '0', GRPC_PORT: '0', DATABASE_POOL_MAX: '20',
  SIGNUP_GRANT_CREDITS: '1000000', USAGE_DLQ_TOPIC: `${topic}.dlq`,
  MODEL_PRICES_JSON: JSON.stringify([{ model: MODEL, inputMicrosPerMillion: 100_000, cachedInputMicrosPerMillion: 25_000, outputMicrosPerMillion: 400_000 }]),
  RESERVATION_TTL_SECONDS: '3600',
});
const pool = createPool(process.env.DATABASE_URL, { applicationName: 'billing-bench', max: 2 });
const admin = kafka.admin();
await admin.connect();

/** Offsets the group has committed on the topic, over all partitions: events settled so far. */
const committedOffsets = async (topicName, groupName) =>
  (await admin.fetchOffsets({ groupId: groupName, topics: [topicName] }))[0].partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);

/**
 * Starts billing (its own process, built dist, as in production: the benchmark's event
 * loop does not share a thread with it) on `topicName` and times it draining the `count`
 * events already there. Progress comes from the group's committed offsets (committed only
 * after each chunk's transaction): cheap for the broker, where counting rows would load
 * the Postgres being measured.
 */
async function startAndDrain(topicName, groupName, count) {
  const httpPort = await freePort();
  const grpcPort = await freePort();
  const child = spawnBilling(
    { ...process.env, HTTP_HOST: '127.0.0.1', HTTP_PORT: String(httpPort), GRPC_PORT: String(grpcPort), KAFKA_CONSUMER_GROUP: groupName, USAGE_TOPIC: topicName },
    (chunk) => process.stderr.write(chunk),
  );
  await waitReady(`http://127.0.0.1:${httpPort}/readyz`, child, 120_000);
  const committed = () => committedOffsets(topicName, groupName);
  const cpuBefore = { billing: processCpuSeconds(child.pid), postgres: postgresCpuSeconds() };
  const start = performance.now();
  let firstApplied;
  let applied = 0;
  while (applied < count) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    applied = await committed();
    if (applied > 0 && firstApplied === undefined) firstApplied = { at: performance.now(), applied };
  }
  const end = performance.now();
  const cpu = { billing: processCpuSeconds(child.pid) - cpuBefore.billing, postgres: postgresCpuSeconds() - cpuBefore.postgres };
  const stop = async () => {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  };
  return {
    child, httpPort, grpcPort, stop,
    stats: {
      applied,
      drain_seconds: +((end - start) / 1000).toFixed(2),
      // From the first applied chunk to the last: billing's start-up is not counted.
      events_per_second_sustained: Math.round((applied - (firstApplied?.applied ?? 0)) / ((end - (firstApplied?.at ?? start)) / 1000)),
      cpu_us_per_event: { billing: Math.round((cpu.billing * 1e6) / count), postgres: Math.round((cpu.postgres * 1e6) / count) },
    },
  };
}

// Phase 0 (--existing-accounts): every tenant's first event, drained by a billing process
// of its own, so that the measured backlog finds the accounts already there (as in
// production, where a tenant's account is created once). Reported apart: first touches
// also create the account and its sign-up grant.
let expectedMicros = 0n;
let firstTouch;
if (args['existing-accounts']) {
  await ensureTopics(kafka, [{ topic: `${topic}.first` }]);
  expectedMicros += await produce(`${topic}.first`, TENANTS, 0);
  const priming = await startAndDrain(`${topic}.first`, `${group}-first`, TENANTS);
  await priming.stop();
  firstTouch = priming.stats;
}

// Phase 1: the backlog is produced BEFORE billing starts, then billing drains it.
const produceStart = performance.now();
expectedMicros += await produce(topic, EVENTS, firstTouch ? TENANTS : 0);
const produceSeconds = (performance.now() - produceStart) / 1000;
const { child: drainingProcess, httpPort: drainingHttpPort, grpcPort: drainingGrpcPort, stop: stopDraining, stats: usage } = await startAndDrain(topic, group, EVENTS);
// --reserve-apart: Reserve is answered by a billing process of its own with the usage consumer
// off (USAGE_CONSUMER_ENABLED=false), while the draining one keeps settling usage: the two roles
// as separate deployments.
const apart = args['reserve-apart'] ? await startReserveOnly() : undefined;
const billingProcess = apart?.child ?? drainingProcess;
const httpPort = apart?.httpPort ?? drainingHttpPort;
const grpcPort = apart?.grpcPort ?? drainingGrpcPort;
const stopBilling = async () => {
  await apart?.stop();
  await stopDraining();
};
async function startReserveOnly() {
  const ports = { httpPort: await freePort(), grpcPort: await freePort() };
  const child = spawnBilling(
    { ...process.env, HTTP_HOST: '127.0.0.1', HTTP_PORT: String(ports.httpPort), GRPC_PORT: String(ports.grpcPort), USAGE_CONSUMER_ENABLED: 'false', KAFKA_CONSUMER_GROUP: `${group}-reserve` },
    (chunk) => process.stderr.write(chunk),
  );
  await waitReady(`http://127.0.0.1:${ports.httpPort}/readyz`, child, 120_000);
  return { child, ...ports, stop: () => (child.kill('SIGTERM'), new Promise((resolve) => child.once('exit', resolve))) };
}
/** Usage records and the ledger's usage charges of this run's tenants. */
async function ledgerTotals() {
  const { rows: records } = await pool.query(`SELECT count(*) AS n, coalesce(sum(cost_micros), 0)::text AS cost FROM billing.usage_records WHERE tenant_id LIKE $1`, [`bench-${run}-%`]);
  const { rows: ledger } = await pool.query(
    `SELECT coalesce(-sum(e.amount_micros), 0)::text AS charged FROM billing.ledger_entries e JOIN billing.accounts a ON a.id = e.account_id JOIN billing.ledger_transactions t ON t.id = e.transaction_id
      WHERE a.tenant_id LIKE $1 AND t.kind = 'usage'`,
    [`bench-${run}-%`],
  );
  return { records: Number(records[0].n), recordsMicros: records[0].cost, ledgerMicros: ledger[0].charged };
}
const afterDrain = await ledgerTotals();
const expectedAfterDrain = expectedMicros.toString();

// Phase 2: Reserve at a fixed rate, after a CHECKPOINT (when permitted) so that it does
// not pay for flushing the backlog's dirty pages (the two targets are measured apart).
// Two load generators in turn, each after a warm-up (--warmup-seconds at the same rate,
// not measured): ghz, a gRPC load generator in Go (bench/tools/ghz.sh), and a Node
// client built on the platform's own gRPC client. Both are open loop: each call is
// sent at its scheduled time whatever the previous ones did.
const checkpoint = await pool.query('CHECKPOINT').then(() => true, () => false);
const total = RPS * SECONDS;
const warmup = Math.round(RPS * Number(args['warmup-seconds']));
const clients = args.clients.split(',').filter(Boolean);
let tenantCursor = 0;
const nextRequests = (count) => Array.from({ length: count }, () => {
  const i = tenantCursor++;
  return { tenantId: tenantOf(i), userId: 'u', apiKeyId: 'k', requestId: `q${i}`, model: MODEL, inputTokens: 100, maxOutputTokens: 100 };
});
/** Billing's own Reserve histogram (cumulative bucket counts by `le`). */
async function serverHistogram() {
  const text = await fetch(`http://127.0.0.1:${httpPort}/metrics`).then((response) => response.text());
  const buckets = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('grpc_server_handling_seconds_bucket{') || !/method="[^"]*Reserve"/.test(line)) continue;
    buckets[/le="([^"]+)"/.exec(line)[1]] = Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return buckets;
}
/** Share of the calls between two histogram readings that billing answered within 1/2.5/5/10 ms. */
function shareWithin(before, after) {
  const count = (le) => (after[le] ?? 0) - (before[le] ?? 0);
  const all = count('+Inf');
  return all ? Object.fromEntries(['0.001', '0.0025', '0.005', '0.01'].map((le) => [`le_${Number(le) * 1000}ms`, +(count(le) / all).toFixed(4)])) : undefined;
}

async function nodeClientPhase(count) {
  const client = createGrpcClient(billing.BillingService, `127.0.0.1:${grpcPort}`, { defaultTimeoutMs: 10_000 });
  const requests = nextRequests(count);
  const latencies = [];
  let errors = 0;
  const start = performance.now();
  const calls = [];
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / RPS;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const sent = performance.now();
    calls.push(client.reserve(requests[i]).then(() => latencies.push(performance.now() - sent), () => errors++));
  }
  await Promise.all(calls);
  const achieved = count / ((performance.now() - start) / 1000);
  client.close();
  latencies.sort((a, b) => a - b);
  return { calls: count, errors, achieved_rps: Math.round(achieved), p50_ms: +percentile(latencies, 50).toFixed(2), p99_ms: +percentile(latencies, 99).toFixed(2), max_ms: +latencies.at(-1).toFixed(2) };
}

const ghzBinary = clients.includes('ghz') ? execFileSync('bash', [path.join(import.meta.dirname, '../tools/ghz.sh')], { encoding: 'utf8' }).trim().split('\n').at(-1) : undefined;
const protoRoot = path.join(import.meta.dirname, '../../proto');
async function ghzPhase(count) {
  // ghz sends the messages of a JSON array round-robin, one per call.
  const dataFile = path.join(tmpdir(), `reserve-${run}-${tenantCursor}.json`);
  const requests = nextRequests(count).map((r) => ({ tenant_id: r.tenantId, user_id: r.userId, api_key_id: r.apiKeyId, request_id: r.requestId, model: r.model, input_tokens: r.inputTokens, max_output_tokens: r.maxOutputTokens }));
  writeFileSync(dataFile, JSON.stringify(requests));
  const { stdout } = await execFileAsync(ghzBinary, [
    '--insecure', '--proto', path.join(protoRoot, 'ai/platform/billing/v1/billing.proto'), '--import-paths', protoRoot,
    '--call', 'ai.platform.billing.v1.BillingService/Reserve', '--data-file', dataFile,
    '--rps', String(RPS), '--total', String(count), '--concurrency', '50', '--connections', '1', '--timeout', '10s',
    '--format', 'json', `127.0.0.1:${grpcPort}`,
  ], { maxBuffer: 64 * 1024 * 1024 });
  rmSync(dataFile, { force: true });
  const report = JSON.parse(stdout);
  const at = (percentage) => report.latencyDistribution.find((entry) => entry.percentage === percentage).latency / 1e6;
  const ok = report.statusCodeDistribution?.OK ?? 0;
  return { calls: report.count, errors: report.count - ok, achieved_rps: Math.round(report.rps), p50_ms: +at(50).toFixed(2), p99_ms: +at(99).toFixed(2), max_ms: +(report.slowest / 1e6).toFixed(2) };
}

const USAGE_DURING_RESERVE = Number(args['usage-during-reserve']);
const steady = USAGE_DURING_RESERVE > 0 ? steadyUsage(topic, USAGE_DURING_RESERVE, (firstTouch ? TENANTS : 0) + EVENTS + Number(process.env.BENCH_USAGE_TENANT_OFFSET ?? 0)) : undefined;
const reserve = [];
for (const name of clients) {
  const phase = name === 'ghz' ? ghzPhase : nodeClientPhase;
  if (warmup > 0) await phase(warmup);
  const histogramBefore = await serverHistogram();
  const cpuAt = { billing: processCpuSeconds(billingProcess.pid), postgres: postgresCpuSeconds() };
  const measured = await phase(total);
  reserve.push({
    client: name,
    ...measured,
    server_share_within: shareWithin(histogramBefore, await serverHistogram()),
    cpu_us_per_call: {
      billing: Math.round(((processCpuSeconds(billingProcess.pid) - cpuAt.billing) * 1e6) / total),
      postgres: Math.round(((postgresCpuSeconds() - cpuAt.postgres) * 1e6) / total),
    },
  });
}
// The usage produced during Reserve: every event settled, and the ledger still equal to the sum of all events.
let usageDuringReserve;
if (steady) {
  const produced = await steady.stop();
  expectedMicros += produced.micros;
  const deadline = Date.now() + 120_000;
  while ((await committedOffsets(topic, group)) < EVENTS + produced.events && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
  const after = await ledgerTotals();
  usageDuringReserve = {
    events_per_second: USAGE_DURING_RESERVE, events: produced.events, applied: (await committedOffsets(topic, group)) - EVENTS,
    ledger_usage_micros: after.ledgerMicros, expected_micros: expectedMicros.toString(), ledger_matches: after.ledgerMicros === expectedMicros.toString(),
  };
}
await admin.disconnect();
await stopBilling();
await pool.end();
if (!args['keep-database']) {
  const admin = createPool(sharedDatabaseUrl, { applicationName: 'billing-bench-admin', max: 1 });
  await admin.query(`DROP DATABASE ${database} WITH (FORCE)`);
  await admin.end();
}

const result = {
  tenants: TENANTS,
  events: EVENTS,
  produce_seconds: +produceSeconds.toFixed(2),
  accounts_existed: Boolean(firstTouch),
  first_touch: firstTouch,
  usage_applied: usage.applied,
  usage_drain_seconds: usage.drain_seconds,
  usage_events_per_second_sustained: usage.events_per_second_sustained,
  usage_cpu_us_per_event: usage.cpu_us_per_event,
  usage_records: afterDrain.records,
  usage_cost_micros: afterDrain.recordsMicros,
  ledger_usage_micros: afterDrain.ledgerMicros,
  expected_micros: expectedAfterDrain,
  checkpoint_before_reserve: checkpoint,
  reserve_target_rps: RPS,
  reserve_calls: total,
  reserve_warmup_calls: warmup,
  reserve,
  usage_during_reserve: usageDuringReserve,
};
console.log(JSON.stringify(result));
process.exit(0);
