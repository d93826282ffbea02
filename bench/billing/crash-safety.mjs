// Crash safety of the usage consumer (issue 4): produce N usage events (many tenants,
// some duplicates re-sent on purpose) while the billing service is SIGKILLed at random
// and restarted, and Kafka is restarted once; then the ledger must equal the distinct
// events' recomputed costs exactly. Runs against a SEPARATE infra instance only:
//
//   export PLATFORM_LOCAL_DIR=/tmp/billing-crash PG_PORT=31732 REDIS_PORT=56679 KAFKA_PORT=59392 \
//     KAFKA_CONTROLLER_PORT=59393 STRIPE_MOCK_PORT=12411 STRIPE_MOCK_HTTPS_PORT=12412
//   bash infra/local/infra.sh start && npx tsc -b tsconfig.build.json
//   node bench/billing/crash-safety.mjs --events 100000 --tenants 2000 --kills 6 --kafka-restart
//
// Prints one JSON line (also appended to bench/results/billing-crash-safety.jsonl).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { appendFileSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { createKafka, createLogger, createPool, ensureTopics, EventPublisher } from '@ai-platform/platform';
import { freePort, readInfraEnv, repoRoot } from '../../infra/local/stack.mjs';
import { CRASH_PRICE, dropMeterPending, makeUsageEvents, recordedCount, sigkill, spawnBilling, verifyLedger, waitReady } from './crash-lib.mjs';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' }, tenants: { type: 'string', default: '2000' }, kills: { type: 'string', default: '6' },
    'kafka-restart': { type: 'boolean', default: false }, 'produce-seconds': { type: 'string', default: '40' },
  },
});
const stateDir = process.env.PLATFORM_LOCAL_DIR;
if (!stateDir || stateDir.endsWith('/.local')) throw new Error('set PLATFORM_LOCAL_DIR to a separate infra instance (not the shared .local)');
const infra = readInfraEnv(stateDir);
if (/:55432\//.test(infra.DATABASE_URL)) throw new Error('refusing to run on the shared database (port 55432)');

const EVENTS = Number(args.events);
const KILLS = Number(args.kills);
const run = randomUUID().slice(0, 8);
const prefix = `crash-${run}`;
const topic = `crash.usage.events.v1.${run}`;
const group = `billing-crash-${run}`;
const log = (...parts) => console.error(`[crash ${((performance.now() - t0) / 1000).toFixed(1)}s]`, ...parts);
const t0 = performance.now();

const { messages, ids, expected } = makeUsageEvents({ count: EVENTS, tenants: Number(args.tenants), prefix });
const kafka = createKafka(infra.KAFKA_BROKERS.split(','), `crash-${run}`, createLogger('crash', 'error'));
await ensureTopics(kafka, [{ topic, numPartitions: 3 }, { topic: `${topic}.dlq` }]);
const pool = createPool(infra.DATABASE_URL, { applicationName: 'billing-crash', max: 2 });

const httpPort = await freePort();
const env = {
  NODE_ENV: 'production', LOG_LEVEL: 'warn', HTTP_HOST: '127.0.0.1', HTTP_PORT: String(httpPort), GRPC_PORT: String(await freePort()),
  DATABASE_URL: infra.DATABASE_URL, KAFKA_BROKERS: infra.KAFKA_BROKERS, KAFKA_CONSUMER_GROUP: group, USAGE_TOPIC: topic, USAGE_DLQ_TOPIC: `${topic}.dlq`,
  SIGNUP_GRANT_CREDITS: '1000', KAFKA_SESSION_TIMEOUT_MS: '6000', MODEL_PRICES_JSON: JSON.stringify([CRASH_PRICE]), SHUTDOWN_GRACE_MS: '1000',
};
const tail = [];
let billing;
let starts = 0;
async function startBilling() {
  billing = spawnBilling(env, (chunk) => { tail.push(chunk.toString()); if (tail.length > 50) tail.shift(); });
  starts++;
  await waitReady(`http://127.0.0.1:${httpPort}/readyz`, billing);
}

// Producer: paced over --produce-seconds, retrying a batch while Kafka is down (a retried
// batch may land twice: more duplicates, which billing must also count once).
let produced = 0;
let produceRetries = 0;
const producing = (async () => {
  const publisher = new EventPublisher(kafka);
  const batchSize = 500;
  const start = performance.now();
  const perMs = messages.length / (Number(args['produce-seconds']) * 1000);
  for (let from = 0; from < messages.length; from += batchSize) {
    const wait = start + from / perMs - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    for (;;) {
      try {
        await publisher.publish(topic, messages.slice(from, from + batchSize));
        break;
      } catch {
        produceRetries++;
        await publisher.disconnect().catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
    produced = Math.min(messages.length, from + batchSize);
  }
  await publisher.disconnect().catch(() => {});
  log(`produced ${messages.length} messages (${ids.size} distinct events)`);
})();

async function restartKafka() {
  const pid = Number(readFileSync(`${stateDir}/kafka/kafka.pid`, 'utf8').trim());
  log(`stopping kafka (pid ${pid})`);
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 600; i++) {
    try { process.kill(pid, 0); } catch { break; }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  log('starting kafka again (infra.sh start skips the running parts)');
  await promisify(execFile)('bash', ['infra/local/infra.sh', 'start'], { cwd: repoRoot });
  log('kafka is back');
}

await startBilling();
const kills = [];
for (let k = 0; k < KILLS; k++) {
  if (args['kafka-restart'] && k === Math.floor(KILLS / 2)) await restartKafka(); // while billing consumes
  await new Promise((resolve) => setTimeout(resolve, 2_000 + Math.random() * 5_000));
  const before = await recordedCount(pool, prefix);
  await sigkill(billing);
  kills.push({ at_s: +((performance.now() - t0) / 1000).toFixed(1), recorded_before: before, produced });
  log(`SIGKILL #${k + 1}: ${before} events recorded, ${produced} produced`);
  await startBilling();
}
await producing;

// Drain: wait for every distinct event; a consumer that makes no progress for 60 s is restarted (counted).
let stallRestarts = 0;
let last = -1;
let lastChange = performance.now();
for (;;) {
  const n = await recordedCount(pool, prefix);
  if (n >= ids.size) break;
  if (n !== last) { last = n; lastChange = performance.now(); }
  if (performance.now() - lastChange > 60_000) {
    log(`no progress for 60 s at ${n}; restarting billing`, tail.slice(-5).join(''));
    await sigkill(billing); await startBilling(); stallRestarts++; lastChange = performance.now();
    if (stallRestarts > 3) break;
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
}
// Let duplicates still in flight arrive: the lag is zero once every message was consumed.
await new Promise((resolve) => setTimeout(resolve, 3_000));
const seconds = (performance.now() - t0) / 1000;
billing.kill('SIGTERM');
await new Promise((resolve) => billing.once('exit', resolve));
const check = await verifyLedger(pool, { prefix, ids, expected, group });
await dropMeterPending(pool, prefix);
await pool.end();

const result = {
  at: new Date().toISOString(), events: EVENTS, messages_produced: messages.length, duplicates_sent: messages.length - ids.size, produce_retries: produceRetries,
  sigkills: kills.length, kafka_restarts: args['kafka-restart'] ? 1 : 0, billing_starts: starts, stall_restarts: stallRestarts, seconds: +seconds.toFixed(1), kills, ...check,
};
const line = JSON.stringify(result);
console.log(line);
appendFileSync(`${repoRoot}/bench/results/billing-crash-safety.jsonl`, `${line}\n`);
process.exit(check.exact ? 0 : 1);
