import { Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';
import type { Logger } from 'pino';
import { kafkaMessages } from '../metrics/metrics';
import { cloudEventHeaders, withEventId, type CloudEvent } from './cloud-event';

export function createKafka(brokers: string[], clientId: string, logger: Logger): Kafka {
  return new Kafka({
    clientId,
    brokers,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5_000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, log }) => {
      const { message, ...extra } = log;
      const method = level <= logLevel.ERROR ? 'error' : level === logLevel.WARN ? 'warn' : 'debug';
      logger[method]({ namespace, ...extra }, `kafka: ${message}`);
    },
  });
}

/** Errors a broker answers while a new topic's metadata is still spreading (a broker just started, a topic just made). */
const TOPIC_NOT_READY = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE']);

/**
 * Creates missing topics (existing ones are left as they are) and returns once every
 * partition of every listed topic has a leader, so a producer or consumer started next
 * does not fail on a topic that exists but is not served yet. A broker that has just
 * started answers UNKNOWN_TOPIC_OR_PARTITION for a moment, which kafkajs' own leader wait
 * does not retry; that answer is retried here until `readyTimeoutMs`.
 */
export async function ensureTopics(kafka: Kafka, topics: Array<{ topic: string; numPartitions?: number }>, { readyTimeoutMs = 30_000 } = {}): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      try {
        const existing = new Set(await admin.listTopics());
        const missing = topics.filter(({ topic }) => !existing.has(topic));
        if (missing.length > 0) {
          await admin.createTopics({
            topics: missing.map(({ topic, numPartitions }) => ({ topic, numPartitions: numPartitions ?? 6, replicationFactor: -1 })),
          });
        }
        const { topics: served } = await admin.fetchTopicMetadata({ topics: topics.map(({ topic }) => topic) });
        const waiting = served.filter((topic) => topic.partitions.length === 0 || topic.partitions.some((partition) => partition.leader < 0));
        if (waiting.length === 0) return;
        if (Date.now() > deadline) throw new Error(`topics without a leader after ${readyTimeoutMs} ms: ${waiting.map((topic) => topic.name).join(', ')}`);
      } catch (error) {
        if (!TOPIC_NOT_READY.has((error as { type?: string }).type ?? '') || Date.now() > deadline) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await admin.disconnect();
  }
}

/**
 * An idempotent producer (no duplicates from its own retries) that writes
 * CloudEvents and waits for all in-sync replicas.
 */
export class EventPublisher {
  private readonly producer: Producer;
  private connected = false;

  constructor(kafka: Kafka) {
    this.producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  }

  async connect(): Promise<void> {
    if (this.connected) return;
    await this.producer.connect();
    this.connected = true;
  }

  async publish(topic: string, events: CloudEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.connect();
    try {
      await this.producer.send({
        topic,
        acks: -1,
        messages: events.map((event) => {
          const withId = withEventId(event);
          return { key: withId.key, value: withId.data, headers: cloudEventHeaders(withId) };
        }),
      });
      kafkaMessages.inc({ topic, direction: 'produced', outcome: 'ok' }, events.length);
    } catch (error) {
      kafkaMessages.inc({ topic, direction: 'produced', outcome: 'error' }, events.length);
      throw error;
    }
  }

  async disconnect(): Promise<void> {
    if (!this.connected) return;
    this.connected = false;
    await this.producer.disconnect();
  }
}
