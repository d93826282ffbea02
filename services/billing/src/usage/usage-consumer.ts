import { Inject, Injectable } from '@nestjs/common';
import { Topics } from '@ai-platform/contracts';
import { CONFIG, EventPublisher, IdempotentConsumer, LOGGER, PoisonMessageError, type ConsumedEvent, type Logger, type Pool, type PoolClient } from '@ai-platform/platform';
import type { PriceTable } from '@ai-platform/pricing';
import type { Kafka } from 'kafkajs';
import type { BillingConfig } from '../config';
import { KAFKA, PG_POOL, PRICE_TABLE } from '../infra/tokens';
import { parseUsageEvent } from './usage-event';
import { UsageSettlement } from './usage-settlement';

/**
 * Consumes `usage.events.v1` exactly once in effect (IdempotentConsumer: the
 * event id is recorded in the same transaction as the usage record and the
 * ledger, offsets are committed after). Events that can never be billed go to
 * `usage.events.dlq.v1` with their reason; no money moves for them.
 */
@Injectable()
export class UsageConsumer {
  private consumer?: IdempotentConsumer;
  private publisher?: EventPublisher;

  constructor(
    @Inject(CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(KAFKA) private readonly kafka: Kafka,
    @Inject(PRICE_TABLE) private readonly prices: PriceTable,
    @Inject(UsageSettlement) private readonly settlement: UsageSettlement,
  ) {}

  get isRunning(): boolean {
    return this.consumer?.isRunning ?? false;
  }

  async start(): Promise<void> {
    this.publisher = new EventPublisher(this.kafka);
    this.consumer = new IdempotentConsumer({
      kafka: this.kafka,
      pool: this.pool,
      schema: 'billing',
      groupId: this.config.KAFKA_CONSUMER_GROUP,
      topic: Topics.usageEvents,
      deadLetterTopic: Topics.usageEventsDeadLetter,
      publisher: this.publisher,
      logger: this.logger,
      handle: (client, event) => this.handle(client, event),
    });
    await this.consumer.start();
    this.logger.info({ topic: Topics.usageEvents, group: this.config.KAFKA_CONSUMER_GROUP }, 'usage consumer started');
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
    await this.publisher?.disconnect();
  }

  private async handle(client: PoolClient, event: ConsumedEvent): Promise<void> {
    const usage = parseUsageEvent(event, this.prices);
    try {
      const result = await this.settlement.apply(client, usage);
      this.logger.debug(
        { event_id: usage.eventId, tenant_id: usage.tenantId, cost_micros: result.costMicros.toString(), balance_change_micros: result.balanceChangeMicros.toString(), applied: result.applied },
        'usage event settled',
      );
    } catch (error) {
      // Data and integrity errors fail the same way on every retry: park the
      // event instead of blocking its partition. Other failures (connection,
      // deadlock, timeout) propagate and the event is retried.
      const code = (error as { code?: unknown }).code;
      if (typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'))) {
        throw new PoisonMessageError(`rejected by the database (${code}): ${(error as Error).message}`);
      }
      throw error;
    }
  }
}
