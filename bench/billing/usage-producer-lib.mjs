// Usage events for the billing benchmarks: a backlog produced at once, or a steady flow at a rate.
// Event i belongs to tenant `tenantOf(i)`; each costs 10 input and 1 + (i mod 50) output tokens of
// `model` at the benchmark's price, and every producer returns what its events cost in µ.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { create, toJsonString } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { EventTypes, events } from '@ai-platform/contracts';
import { EventPublisher } from '@ai-platform/platform';

export function usageProducers({ kafka, tenantOf, model, tickMs = 100 }) {
  /** `count` usage events (event i for tenant i mod N) from index `from`, with their cost in µ. */
  function usageBatch(from, count) {
    const batch = [];
    let micros = 0n;
    for (let i = from; i < from + count; i++) {
      const output = 1 + (i % 50);
      micros += BigInt(Math.ceil((output * 400_000) / 1_000_000)) + BigInt(Math.ceil((10 * 100_000) / 1_000_000));
      const now = new Date();
      const event = create(events.UsageEventSchema, {
        eventId: randomUUID(), tenantId: tenantOf(i), userId: 'u', apiKeyId: 'k', requestId: `r${i}`, model, inputTokens: 10, outputTokens: output,
        status: events.UsageStatus.COMPLETED, startedAt: timestampFromDate(now), finishedAt: timestampFromDate(now),
      });
      batch.push({ id: event.eventId, type: EventTypes.usageRecorded, source: 'billing-bench', key: event.tenantId, data: toJsonString(events.UsageEventSchema, event) });
    }
    return { batch, micros };
  }

  /** Produces `count` usage events to `topicName` from index `firstIndex`; returns their cost in µ. */
  async function produce(topicName, count, firstIndex) {
    const publisher = new EventPublisher(kafka);
    await publisher.connect();
    let micros = 0n;
    for (let from = firstIndex; from < firstIndex + count; from += 2_000) {
      const chunk = usageBatch(from, Math.min(2_000, firstIndex + count - from));
      await publisher.publish(topicName, chunk.batch);
      micros += chunk.micros;
    }
    await publisher.disconnect();
    return micros;
  }

  /**
   * Produces usage events to `topicName` at `perSecond` (what is due every `tickMs`, as a fleet of
   * gateways would) until stopped, so that Reserve is measured while billing also settles usage.
   */
  function steadyUsage(topicName, perSecond, firstIndex) {
    const publisher = new EventPublisher(kafka);
    let produced = 0;
    let micros = 0n;
    let stopped = false;
    const running = (async () => {
      await publisher.connect();
      const start = performance.now();
      while (!stopped) {
        const due = Math.floor(((performance.now() - start) / 1000) * perSecond) - produced;
        if (due > 0) {
          const chunk = usageBatch(firstIndex + produced, due);
          await publisher.publish(topicName, chunk.batch);
          produced += due;
          micros += chunk.micros;
        }
        await new Promise((resolve) => setTimeout(resolve, tickMs));
      }
      await publisher.disconnect();
    })();
    const stop = async () => {
      stopped = true;
      await running;
      return { events: produced, micros };
    };
    return { stop };
  }

  return { usageBatch, produce, steadyUsage };
}
