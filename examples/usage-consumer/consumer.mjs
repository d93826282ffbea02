// A standalone consumer of the platform's usage stream (usage.events.v1), the
// contract in services/billing/USAGE_STREAM.md. Plain Node + kafkajs.
//
//   KAFKA_BROKERS=127.0.0.1:59092 node examples/usage-consumer/consumer.mjs
//
// It prints cost and tokens per tenant every few seconds. It deduplicates by
// event id (ce_id) because delivery is at least once. This example keeps the
// seen ids and totals in memory; a real consumer stores them durably in the
// same transaction as its own effect and commits the offset after it.
import { Kafka, logLevel } from 'kafkajs';

/** Decodes one message per the contract; returns undefined (with a reason) for a message to park. */
export function decodeUsage(message) {
  const header = (name) => message.headers?.[name]?.toString();
  const id = header('ce_id');
  if (!id) return { reason: 'no ce_id header' };
  if (header('ce_type') !== 'ai.platform.events.v1.UsageEvent') return { reason: `unexpected ce_type ${header('ce_type')}` };
  if (!/^application\/json/.test(header('content-type') ?? '')) return { reason: `unsupported content-type ${header('content-type')}` };
  let body;
  try {
    body = JSON.parse(message.value?.toString() ?? '');
  } catch {
    return { reason: 'value is not JSON' };
  }
  if ((body.eventId ?? id) !== id) return { reason: 'eventId differs from ce_id' };
  const count = (value) => (value === undefined ? 0 : Number(value));
  const usage = {
    id,
    tenantId: body.tenantId ?? message.key?.toString() ?? '',
    model: body.model ?? '',
    status: body.status ?? 'USAGE_STATUS_UNSPECIFIED',
    inputTokens: count(body.inputTokens),
    cachedInputTokens: count(body.cachedInputTokens),
    outputTokens: count(body.outputTokens),
    // int64 is a JSON string in the protobuf JSON mapping: keep it exact.
    costMicros: BigInt(body.costMicros ?? 0),
    traceparent: header('traceparent'),
  };
  if (!usage.tenantId) return { reason: 'no tenant' };
  if (![usage.inputTokens, usage.cachedInputTokens, usage.outputTokens].every((n) => Number.isInteger(n) && n >= 0)) return { reason: 'bad token counts' };
  return { usage };
}

/** Per-tenant totals, each event id counted once. */
export class UsageTotals {
  seen = new Set();
  byTenant = new Map();
  rejected = [];

  add(usage) {
    if (this.seen.has(usage.id)) return false;
    this.seen.add(usage.id);
    const total = this.byTenant.get(usage.tenantId) ?? { events: 0, inputTokens: 0, outputTokens: 0, costMicros: 0n };
    total.events += 1;
    total.inputTokens += usage.inputTokens;
    total.outputTokens += usage.outputTokens;
    total.costMicros += usage.costMicros;
    this.byTenant.set(usage.tenantId, total);
    return true;
  }
}

/** Starts consuming; resolves with { totals, stop }. */
export async function startUsageConsumer({ brokers, topic = 'usage.events.v1', groupId = 'usage-example', fromBeginning = false, onEvent } = {}) {
  const kafka = new Kafka({ clientId: groupId, brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 });
  const totals = new UsageTotals();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning });
  await consumer.run({
    // eachMessage commits after the handler returns: at-least-once.
    eachMessage: async ({ message, partition }) => {
      const decoded = decodeUsage(message);
      if (decoded.usage) {
        if (totals.add(decoded.usage)) onEvent?.(decoded.usage);
      } else {
        totals.rejected.push({ partition, offset: message.offset, reason: decoded.reason });
      }
    },
  });
  return { totals, stop: () => consumer.disconnect() };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:59092').split(',');
  const { totals, stop } = await startUsageConsumer({ brokers, topic: process.env.USAGE_TOPIC ?? 'usage.events.v1', groupId: process.env.GROUP_ID ?? 'usage-example' });
  const timer = setInterval(() => {
    for (const [tenant, total] of totals.byTenant) console.log(`${tenant}\tevents=${total.events}\tin=${total.inputTokens}\tout=${total.outputTokens}\tcost_micros=${total.costMicros}`);
  }, 5_000);
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => { clearInterval(timer); void stop().then(() => process.exit(0)); });
}
