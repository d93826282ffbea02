import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM example, run as is by its users
import { startUsageConsumer } from '../examples/usage-consumer/consumer.mjs';

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:59092').split(',');
const topic = `test.usage.events.v1.${randomUUID().slice(0, 8)}`;
const kafka = new Kafka({ clientId: 'usage-consumer-test', brokers, logLevel: logLevel.NOTHING });
let stop: (() => Promise<void>) | undefined;

afterAll(async () => {
  await stop?.();
});

const headers = (id: string, extra: Record<string, string> = {}) => ({
  ce_specversion: '1.0', ce_id: id, ce_type: 'ai.platform.events.v1.UsageEvent', ce_source: 'inference-scheduler', ce_time: new Date().toISOString(),
  'content-type': 'application/json', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', ...extra,
});

describe('examples/usage-consumer against real Kafka', () => {
  it('decodes the contract, counts a redelivered event once and sets bad messages aside', async () => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
    await admin.disconnect();
    const [a, b] = [`tenant-${randomUUID()}`, `tenant-${randomUUID()}`];
    const event = (tenantId: string, output: number, cost: string) => {
      const eventId = randomUUID();
      // Protobuf JSON: int64 as a string, zero values omitted (no cachedInputTokens here).
      return { key: tenantId, headers: headers(eventId), value: JSON.stringify({ eventId, tenantId, model: 'gemma-3-270m', inputTokens: 10, outputTokens: output, costMicros: cost, status: 'USAGE_STATUS_COMPLETED', futureField: 1 }) };
    };
    const first = event(a, 5, '3');
    const messages = [first, event(a, 7, '4'), event(b, 1, '9007199254740993'), first /* redelivered */,
      { key: a, headers: headers(randomUUID()), value: '{not json' }, { key: a, headers: { 'content-type': 'application/json' }, value: '{}' }];
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages });
    await producer.disconnect();

    const consumer = await startUsageConsumer({ brokers, topic, groupId: `usage-example-${randomUUID()}`, fromBeginning: true });
    stop = consumer.stop;
    const deadline = Date.now() + 30_000;
    while (consumer.totals.seen.size + consumer.totals.rejected.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(consumer.totals.byTenant.get(a)).toEqual({ events: 2, inputTokens: 20, outputTokens: 12, costMicros: 7n });
    expect(consumer.totals.byTenant.get(b)).toEqual({ events: 1, inputTokens: 10, outputTokens: 1, costMicros: 9007199254740993n });
    expect(consumer.totals.rejected.map((r: { reason: string }) => r.reason).sort()).toEqual(['no ce_id header', 'value is not JSON']);
  });
});
