import type { Consumer, Kafka, KafkaMessage } from 'kafkajs';
import type { Logger } from 'pino';
import type { Pool, PoolClient } from 'pg';
import { runWithContext } from '../lifecycle/request-context';
import { kafkaMessages } from '../metrics/metrics';
import { withTransaction } from '../postgres/postgres';
import { extractTraceContext, SpanKind, withSpan } from '../telemetry/telemetry';
import { headerValue } from './cloud-event';
import type { EventPublisher } from './kafka';

/** Thrown by a handler for a message that can never succeed; it is parked, not retried. */
export class PoisonMessageError extends Error {}

export interface ConsumedEvent {
  id: string;
  type?: string;
  key?: string;
  topic: string;
  partition: number;
  offset: string;
  value: Buffer;
  headers: Record<string, string | undefined>;
}

export interface IdempotentConsumerOptions {
  kafka: Kafka;
  pool: Pool;
  /** Postgres schema of the consuming service; holds its `processed_events` table. */
  schema: string;
  groupId: string;
  topic: string;
  deadLetterTopic: string;
  publisher: EventPublisher;
  logger: Logger;
  /** Where a consumer group with no committed offset starts (default: the beginning). */
  fromBeginning?: boolean;
  /** Runs inside the same transaction that records the event id. */
  handle: (client: PoolClient, event: ConsumedEvent) => Promise<void>;
}

/**
 * Consumes each event exactly once in effect: the event id is inserted in the
 * same Postgres transaction as the handler's writes, and the offset is committed
 * only after that transaction. A redelivered event finds its id and is skipped.
 * Poison events go to the dead-letter topic with their reason; the consumer goes on.
 */
export class IdempotentConsumer {
  private consumer?: Consumer;
  private running = false;

  constructor(private readonly options: IdempotentConsumerOptions) {}

  async start(): Promise<void> {
    const { kafka, pool, schema, groupId, topic } = this.options;
    await pool.query(
      `CREATE TABLE IF NOT EXISTS ${schema}.processed_events (
         consumer_group text NOT NULL, event_id text NOT NULL, outcome text NOT NULL DEFAULT 'applied',
         processed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer_group, event_id))`,
    );
    // A short fetch wait keeps shutdown quick; an idle consumer polls twice a second.
    this.consumer = kafka.consumer({ groupId, sessionTimeout: 30_000, heartbeatInterval: 3_000, maxWaitTimeInMs: 500 });
    this.consumer.on(this.consumer.events.CRASH, (event) => {
      if (!event.payload.restart) this.running = false;
      this.options.logger.error({ err: event.payload.error, restart: event.payload.restart }, 'kafka consumer crashed');
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic, fromBeginning: this.options.fromBeginning ?? true });
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic: from, partition, message }) => {
        await this.process(from, partition, message);
        await this.consumer!.commitOffsets([{ topic: from, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
      },
    });
    this.running = true;
  }

  /** False before start, after stop, and after a crash kafkajs will not restart from. */
  get isRunning(): boolean {
    return this.running;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.consumer?.disconnect();
  }

  private async process(topic: string, partition: number, message: KafkaMessage): Promise<void> {
    const headers: Record<string, string | undefined> = {};
    for (const name of Object.keys(message.headers ?? {})) headers[name] = headerValue(message.headers, name);
    const event: ConsumedEvent = {
      id: headers.ce_id ?? `${topic}/${partition}/${message.offset}`,
      type: headers.ce_type,
      key: message.key?.toString(),
      topic,
      partition,
      offset: message.offset,
      value: message.value ?? Buffer.alloc(0),
      headers,
    };
    const { pool, schema, groupId, logger } = this.options;
    await runWithContext({ tenantId: event.key }, () =>
      withSpan(`consume ${topic}`, { kind: SpanKind.CONSUMER, parent: extractTraceContext(headers), attributes: { 'messaging.message.id': event.id } }, async () => {
        try {
          const applied = await withTransaction(pool, async (client) => {
            const inserted = await client.query(
              `INSERT INTO ${schema}.processed_events (consumer_group, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id`,
              [groupId, event.id],
            );
            if (inserted.rowCount === 0) return false;
            await this.options.handle(client, event);
            return true;
          });
          kafkaMessages.inc({ topic, direction: 'consumed', outcome: applied ? 'applied' : 'duplicate' });
        } catch (error) {
          if (!(error instanceof PoisonMessageError)) throw error;
          await this.deadLetter(event, error.message);
          await pool.query(
            `INSERT INTO ${schema}.processed_events (consumer_group, event_id, outcome) VALUES ($1, $2, 'dead_lettered') ON CONFLICT DO NOTHING`,
            [groupId, event.id],
          );
          kafkaMessages.inc({ topic, direction: 'consumed', outcome: 'dead_lettered' });
          logger.warn({ event_id: event.id, reason: error.message }, 'event parked in dead-letter topic');
        }
      }),
    );
  }

  private async deadLetter(event: ConsumedEvent, reason: string): Promise<void> {
    await this.options.publisher.publish(this.options.deadLetterTopic, [
      {
        id: event.id,
        type: event.type ?? 'unknown',
        source: `${event.topic}/${event.partition}/${event.offset}`,
        key: event.key ?? '',
        data: event.value,
        contentType: event.headers['content-type'],
        extensions: { deadletterreason: reason.slice(0, 500) },
      },
    ]);
  }
}
