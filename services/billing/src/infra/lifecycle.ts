import path from 'node:path';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Topics } from '@ai-platform/contracts';
import { ensureTopics, HealthRegistry, LOGGER, migrate, type Logger, type Pool } from '@ai-platform/platform';
import type { Kafka } from 'kafkajs';
import { ExpirySweeper } from '../reservations/expiry-sweeper';
import { UsageConsumer } from '../usage/usage-consumer';
import { KAFKA, PG_POOL } from './tokens';

/** services/billing/migrations, from src/infra (tests) and dist/infra (build) alike. */
export const MIGRATIONS_DIR = path.resolve(__dirname, '../../migrations');

/**
 * Start and stop in one place, in order: migrations and readiness checks,
 * then topics, the usage consumer and the expiry sweeper; on shutdown the
 * reverse, the pool last.
 */
@Injectable()
export class BillingLifecycle implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  constructor(
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(KAFKA) private readonly kafka: Kafka,
    @Inject(HealthRegistry) private readonly health: HealthRegistry,
    @Inject(UsageConsumer) private readonly consumer: UsageConsumer,
    @Inject(ExpirySweeper) private readonly sweeper: ExpirySweeper,
  ) {}

  async onModuleInit(): Promise<void> {
    await migrate(this.pool, 'billing', MIGRATIONS_DIR, this.logger);
    this.health.register('postgres', async () => {
      await this.pool.query('SELECT 1');
    });
    this.health.register('usage-consumer', async () => {
      if (!this.consumer.isRunning) throw new Error('usage consumer is not running');
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    await ensureTopics(this.kafka, [{ topic: Topics.usageEvents }, { topic: Topics.usageEventsDeadLetter }]);
    await this.consumer.start();
    this.sweeper.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.sweeper.stop();
    await this.consumer.stop().catch((error) => this.logger.warn({ err: error }, 'usage consumer did not stop cleanly'));
    await this.pool.end();
    this.logger.info('billing resources closed');
  }
}
