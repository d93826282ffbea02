import { existsSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { createKafka, createLogger, createPool, ensureTopics, EventPublisher, type Pool } from '@ai-platform/platform';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM module shared with bench/billing/crash-safety.mjs
import { CRASH_PRICE, dropMeterPending, makeUsageEvents, recordedCount, sigkill, spawnBilling, verifyLedger, waitReady } from '../../../bench/billing/crash-lib.mjs';
// @ts-expect-error plain ESM module shared with `npm start`
import { freePort } from '../../../infra/local/stack.mjs';

const run = randomUUID().slice(0, 8);
const prefix = `crashtest-${run}`;
const topic = `test.crash.usage.events.v1.${run}`;
const group = `billing-crashtest-${run}`;
let pool: Pool | undefined;
let billing: ChildProcess | undefined;
const output: string[] = [];

afterAll(async () => {
  billing?.kill('SIGKILL');
  if (pool) await dropMeterPending(pool, prefix);
  await pool?.end();
  // The run's own topics go too (the shared broker would otherwise keep one pair per run).
  const admin = createKafka(process.env.KAFKA_BROKERS!.split(','), `crashtest-${run}-cleanup`, createLogger('crashtest', 'error')).admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [topic, `${topic}.dlq`] }).catch(() => undefined);
  await admin.disconnect();
});

async function until(probe: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}\n${output.slice(-20).join('')}`);
}

describe('usage consumer crash safety', () => {
  it('bills 2,000 events (duplicates re-sent) exactly once across two SIGKILLs of the billing process mid-stream', async () => {
    const main = path.resolve(import.meta.dirname, '../dist/main.js');
    expect(existsSync(main), `${main} is missing: build first (npx tsc -b tsconfig.build.json)`).toBe(true);
    const { messages, ids, expected } = makeUsageEvents({ count: 2_000, tenants: 20, prefix, duplicateEvery: 40 });
    const kafka = createKafka(process.env.KAFKA_BROKERS!.split(','), `crashtest-${run}`, createLogger('crashtest', 'error'));
    await ensureTopics(kafka, [{ topic, numPartitions: 2 }, { topic: `${topic}.dlq` }]);
    pool = createPool(process.env.DATABASE_URL!, { applicationName: 'billing-crashtest', max: 2 });
    const httpPort = await freePort();
    const env = {
      NODE_ENV: 'test', LOG_LEVEL: 'warn', HTTP_HOST: '127.0.0.1', HTTP_PORT: String(httpPort), GRPC_PORT: String(await freePort()),
      DATABASE_URL: process.env.DATABASE_URL!, KAFKA_BROKERS: process.env.KAFKA_BROKERS!, KAFKA_CONSUMER_GROUP: group, KAFKA_SESSION_TIMEOUT_MS: '6000',
      USAGE_TOPIC: topic, USAGE_DLQ_TOPIC: `${topic}.dlq`, USAGE_BATCH_SIZE: '100', SIGNUP_GRANT_CREDITS: '1', MODEL_PRICES_JSON: JSON.stringify([CRASH_PRICE]),
      SHUTDOWN_GRACE_MS: '1000',
    };
    const start = async () => {
      billing = spawnBilling(env, (chunk: Buffer) => output.push(chunk.toString()));
      await waitReady(`http://127.0.0.1:${httpPort}/readyz`, billing);
    };
    const publisher = new EventPublisher(kafka);
    const third = Math.ceil(messages.length / 3);
    try {
      await start();
      await publisher.publish(topic, messages.slice(0, 2 * third));
      // Killed while it is working through the backlog (between or inside chunk transactions).
      let before = 0;
      await until(async () => (before = await recordedCount(pool!, prefix)) > 0, 'the first events to be applied');
      await sigkill(billing!);
      expect(before).toBeLessThan(ids.size);
      await publisher.publish(topic, messages.slice(2 * third));
      await start();
      let second = 0;
      await until(async () => (second = await recordedCount(pool!, prefix)) > before, 'progress after the restart');
      await sigkill(billing!);
      expect(second).toBeLessThan(ids.size);
      await start();
      await until(async () => (await recordedCount(pool!, prefix)) === ids.size, 'every distinct event to be recorded', 60_000);
      // Every message (duplicates included) consumed: the committed offsets reach the end of the topic.
      const admin = kafka.admin();
      await admin.connect();
      try {
        const ends = await admin.fetchTopicOffsets(topic);
        await until(async () => {
          const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
          return ends.every((end) => committed!.partitions.find((p) => p.partition === end.partition)?.offset === end.offset);
        }, 'the consumer group to reach the end of the topic');
      } finally {
        await admin.disconnect();
      }
    } finally {
      await publisher.disconnect();
    }
    const check = await verifyLedger(pool, { prefix, ids, expected, group });
    expect(check, JSON.stringify(check)).toMatchObject({ missing: 0, unknown: 0, usage_records: ids.size, tenant_mismatches: 0, exact: true });
    expect(check.processed_events).toEqual({}); // nothing dead-lettered (valid events are deduplicated by usage_records.event_id)
    expect(check.ledger_usage_total_micros).toBe(check.expected_total_micros);
  });
});
