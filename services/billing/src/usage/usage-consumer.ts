import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, EventPublisher, headerValue, LOGGER, PoisonMessageError, withTransaction, type ConsumedEvent, type Logger, type Pool } from '@ai-platform/platform';
import type { PriceTable } from '@ai-platform/pricing';
import type { Consumer, Kafka, KafkaMessage } from 'kafkajs';
import { BudgetService } from '../budgets/budget.service';
import type { BillingConfig } from '../config';
import { KAFKA, PG_POOL, PRICE_TABLE } from '../infra/tokens';
import { BatchSettlement } from './batch-settlement';
import { parseUsageEvent, type ValidUsage } from './usage-event';
import { UsageSettlement } from './usage-settlement';

type Parsed = { event: ConsumedEvent; usage?: ValidUsage; reason?: string };

const isDataError = (error: unknown) => {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
};

/**
 * Consumes `usage.events.v1` (USAGE_TOPIC) exactly once in effect, a Kafka batch at a time
 * (`eachBatch`, chunks of USAGE_BATCH_SIZE): in ONE Postgres transaction the
 * chunk's events are settled in bulk (BatchSettlement: one usage record per
 * unique event id; an id already recorded is skipped and charges nothing), and
 * poison messages are parked in `usage.events.dlq.v1` with their reason and
 * remembered in `processed_events`. The offset is committed only after that
 * transaction; a crash anywhere before redelivers the chunk, whose events are
 * then found recorded and skipped. If the bulk transaction
 * fails on a data error, the chunk is retried one event per transaction so the
 * one bad event is parked and the rest are billed.
 */
@Injectable()
export class UsageConsumer {
  private consumer?: Consumer;
  private publisher?: EventPublisher;
  private running = false;

  constructor(
    @Inject(CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(KAFKA) private readonly kafka: Kafka,
    @Inject(PRICE_TABLE) private readonly prices: PriceTable,
    @Inject(BatchSettlement) private readonly batch: BatchSettlement,
    @Inject(UsageSettlement) private readonly single: UsageSettlement,
    @Inject(BudgetService) private readonly budgets: BudgetService,
  ) {}

  get isRunning(): boolean {
    return this.running;
  }

  async start(): Promise<void> {
    await this.pool.query(
      `CREATE TABLE IF NOT EXISTS billing.processed_events (
         consumer_group text NOT NULL, event_id text NOT NULL, outcome text NOT NULL DEFAULT 'applied',
         processed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer_group, event_id))`,
    );
    this.publisher = new EventPublisher(this.kafka);
    const consumer = this.kafka.consumer({
      groupId: this.config.KAFKA_CONSUMER_GROUP,
      sessionTimeout: this.config.KAFKA_SESSION_TIMEOUT_MS,
      heartbeatInterval: Math.min(3_000, Math.floor(this.config.KAFKA_SESSION_TIMEOUT_MS / 3)),
      minBytes: this.config.USAGE_FETCH_MIN_BYTES,
      maxWaitTimeInMs: this.config.USAGE_FETCH_MAX_WAIT_MS,
      maxBytesPerPartition: this.config.USAGE_FETCH_PARTITION_MAX_BYTES,
      maxBytes: this.config.USAGE_FETCH_MAX_BYTES,
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart) this.running = false;
      this.logger.error({ err: event.payload.error, restart: event.payload.restart }, 'usage consumer crashed');
    });
    await consumer.connect();
    await consumer.subscribe({ topic: this.config.USAGE_TOPIC, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.config.USAGE_PARTITIONS_CONCURRENTLY,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const chunks: KafkaMessage[][] = [];
        for (let from = 0; from < batch.messages.length; from += this.config.USAGE_BATCH_SIZE) chunks.push(batch.messages.slice(from, from + this.config.USAGE_BATCH_SIZE));
        let parsed = chunks.length ? this.parseChunk(batch.topic, batch.partition, chunks[0]!) : [];
        for (let index = 0; index < chunks.length; index++) {
          if (!isRunning() || isStale()) return;
          const chunk = chunks[index]!;
          const settling = this.processChunk(parsed);
          settling.catch(() => undefined); // awaited below; this only keeps it from counting as unhandled meanwhile
          // Decode the next chunk while Postgres works on this one (one thread: it runs between replies).
          const following = chunks[index + 1];
          const next = following ? await new Promise<Parsed[]>((resolve, reject) =>
                setImmediate(() => {
                  try {
                    resolve(this.parseChunk(batch.topic, batch.partition, following));
                  } catch (error) {
                    reject(error);
                  }
                }),
              )
            : [];
          await settling;
          parsed = next;
          const offset = (BigInt(chunk.at(-1)!.offset) + 1n).toString();
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset }]);
          resolveOffset(chunk.at(-1)!.offset);
          await heartbeat();
        }
      },
    });
    this.running = true;
    this.logger.info({ topic: this.config.USAGE_TOPIC, group: this.config.KAFKA_CONSUMER_GROUP }, 'usage consumer started');
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.consumer?.disconnect();
    await this.publisher?.disconnect();
  }

  private toEvent(topic: string, partition: number, message: KafkaMessage): ConsumedEvent {
    const headers: Record<string, string | undefined> = {};
    for (const name of Object.keys(message.headers ?? {})) headers[name] = headerValue(message.headers, name);
    return {
      id: headers.ce_id ?? `${topic}/${partition}/${message.offset}`, type: headers.ce_type, key: message.key?.toString(), topic, partition,
      offset: message.offset, value: message.value ?? Buffer.alloc(0), headers,
    };
  }

  private parseChunk(topic: string, partition: number, messages: KafkaMessage[]): Parsed[] {
    return messages.map((message) => {
      const event = this.toEvent(topic, partition, message);
      try {
        return { event, usage: parseUsageEvent(event, this.prices) };
      } catch (error) {
        if (error instanceof PoisonMessageError) return { event, reason: error.message };
        throw error;
      }
    });
  }

  private async processChunk(parsed: Parsed[]): Promise<void> {
    try {
      await withTransaction(this.pool, async (client) => {
        // Poison messages are remembered per consumer group, so a redelivery is not parked twice.
        // Valid events need no row here: usage_records.event_id is unique and written in this same
        // transaction, and BatchSettlement charges only the events it inserted.
        const poisonItems = parsed.filter((item) => !item.usage);
        const { rows } = poisonItems.length
          ? await client.query<{ event_id: string }>(
              `INSERT INTO billing.processed_events (consumer_group, event_id, outcome)
               SELECT $1, id, 'dead_lettered' FROM unnest($2::text[]) AS t(id)
               ON CONFLICT DO NOTHING RETURNING event_id`,
              [this.config.KAFKA_CONSUMER_GROUP, poisonItems.map((item) => item.event.id)],
            )
          : { rows: [] };
        const fresh = new Set(rows.map((row) => row.event_id));
        const poison = poisonItems.filter((item) => fresh.delete(item.event.id)).map((item) => ({ event: item.event, reason: item.reason! }));
        await this.deadLetter(poison);
        await this.batch.apply(client, parsed.flatMap((item) => (item.usage ? [item.usage] : [])));
      });
      await this.budgets.afterCommit();
    } catch (error) {
      if (!isDataError(error)) throw error;
      this.logger.warn({ err: error }, 'bulk settlement hit a data error; settling this chunk one event at a time');
      for (const item of parsed) await this.processOne(item.event);
    }
  }

  /** One event, one transaction: a data error parks only this event (once: it is remembered as dead-lettered). */
  private async processOne(event: ConsumedEvent): Promise<void> {
    const parked = await this.pool.query(`SELECT 1 FROM billing.processed_events WHERE consumer_group = $1 AND event_id = $2`, [this.config.KAFKA_CONSUMER_GROUP, event.id]);
    if (parked.rowCount) return;
    try {
      const usage = parseUsageEvent(event, this.prices);
      await withTransaction(this.pool, async (client) => {
        try {
          await this.single.apply(client, usage); // a usage record already there: nothing happens
        } catch (error) {
          if (isDataError(error)) throw new PoisonMessageError(`rejected by the database (${(error as { code: string }).code}): ${(error as Error).message}`);
          throw error;
        }
      });
      await this.budgets.afterCommit();
    } catch (error) {
      if (!(error instanceof PoisonMessageError)) throw error;
      await this.deadLetter([{ event, reason: error.message }]);
      await this.pool.query(`INSERT INTO billing.processed_events (consumer_group, event_id, outcome) VALUES ($1, $2, 'dead_lettered') ON CONFLICT DO NOTHING`, [this.config.KAFKA_CONSUMER_GROUP, event.id]);
    }
  }

  private async deadLetter(items: Array<{ event: ConsumedEvent; reason: string }>): Promise<void> {
    if (items.length === 0) return;
    await this.publisher!.publish(
      this.config.USAGE_DLQ_TOPIC,
      items.map(({ event, reason }) => ({
        id: event.id, type: event.type ?? 'unknown', source: `${event.topic}/${event.partition}/${event.offset}`, key: event.key ?? '',
        data: event.value, contentType: event.headers['content-type'], extensions: { deadletterreason: reason.slice(0, 500) },
      })),
    );
    for (const { event, reason } of items) this.logger.warn({ event_id: event.id, reason }, 'usage event parked in the dead-letter topic');
  }
}
