// Smoke test of the local Kafka broker with the platform's client (kafkajs).
// Usage: node infra/local/test/kafka-smoke.mjs [brokers]   (default: $KAFKA_BROKERS or 127.0.0.1:59092)
// Checks: admin (create/list topics), auto topic creation, idempotent producer,
// transactional producer (commit + abort), consumer group with read_committed,
// offset commit and resume in the same group.
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';

const require = createRequire(import.meta.url);
const { Kafka, logLevel } = require('kafkajs');

const brokers = (process.argv[2] || process.env.KAFKA_BROKERS || '127.0.0.1:59092').split(',');
const kafka = new Kafka({ clientId: 'infra-smoke', brokers, logLevel: logLevel.WARN, retry: { retries: 5 } });
const run = randomUUID().slice(0, 8);
const topic = `smoke-${run}`;
const autoTopic = `smoke-auto-${run}`;
const groupId = `smoke-group-${run}`;

const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exit(1); };
const timer = setTimeout(() => fail('timed out after 90s'), 90_000);

function consumeUntil(consumer, want, ms = 30_000) {
  return new Promise((resolve, reject) => {
    const got = [];
    const t = setTimeout(() => reject(new Error(`got ${got.length}/${want} messages: ${got.join(',')}`)), ms);
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value.toString());
        if (got.length >= want) { clearTimeout(t); resolve(got); }
      },
    }).catch(reject);
  });
}

const admin = kafka.admin();
await admin.connect();
await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true });
const topics = await admin.listTopics();
if (!topics.includes(topic)) fail(`topic ${topic} not listed`);
console.log(`ok admin: created ${topic} (3 partitions)`);

// Idempotent producer; also exercises auto topic creation.
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: true });
await producer.connect();
await producer.send({ topic, messages: Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `plain-${i}` })) });
await producer.send({ topic: autoTopic, messages: [{ value: 'auto' }] });
console.log('ok idempotent producer: 10 messages + 1 to an auto-created topic');

// Transactional producer: one committed, one aborted transaction.
const txProducer = kafka.producer({ transactionalId: `smoke-tx-${run}`, idempotent: true, maxInFlightRequests: 1 });
await txProducer.connect();
let tx = await txProducer.transaction();
await tx.send({ topic, messages: [{ key: 'tx', value: 'tx-committed-1' }, { key: 'tx', value: 'tx-committed-2' }] });
await tx.commit();
tx = await txProducer.transaction();
await tx.send({ topic, messages: [{ key: 'tx', value: 'tx-aborted' }] });
await tx.abort();
console.log('ok transactional producer: commit + abort');

// Consumer group (read_committed is kafkajs' default): 10 plain + 2 committed, never the aborted one.
const c1 = kafka.consumer({ groupId, maxWaitTimeInMs: 200 });
await c1.connect();
await c1.subscribe({ topic, fromBeginning: true });
const got = await consumeUntil(c1, 12);
await new Promise((r) => setTimeout(r, 1000));
if (got.includes('tx-aborted')) fail('read an aborted transactional message');
if (!got.includes('tx-committed-2')) fail('missing committed transactional message');
await c1.disconnect(); // commits offsets
console.log(`ok consumer group ${groupId}: ${got.length} messages, aborted one filtered`);

// Same group resumes after committed offsets: only the new message arrives.
await producer.send({ topic, messages: [{ key: 'k-late', value: 'late' }] });
const c2 = kafka.consumer({ groupId, maxWaitTimeInMs: 200 });
await c2.connect();
await c2.subscribe({ topic, fromBeginning: true });
const got2 = await consumeUntil(c2, 1);
await new Promise((r) => setTimeout(r, 1000));
if (got2.length !== 1 || got2[0] !== 'late') fail(`resume expected [late], got ${JSON.stringify(got2)}`);
const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
console.log(`ok offsets committed and resumed: ${JSON.stringify(offsets[0].partitions.map((p) => p.offset))}`);

// Auto-created topic readable too.
const c3 = kafka.consumer({ groupId: `${groupId}-auto`, maxWaitTimeInMs: 200 });
await c3.connect();
await c3.subscribe({ topic: autoTopic, fromBeginning: true });
await consumeUntil(c3, 1);
console.log('ok auto-created topic consumed');

await Promise.all([c2.disconnect(), c3.disconnect(), producer.disconnect(), txProducer.disconnect()]);
await admin.deleteTopics({ topics: [topic, autoTopic] });
await admin.disconnect();
clearTimeout(timer);
console.log('kafka smoke: 6 passed, 0 failed');
