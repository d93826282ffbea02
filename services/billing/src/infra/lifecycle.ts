import path from 'node:path';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Topics } from '@ai-platform/contracts';
import { CONFIG, ensureTopics, HealthRegistry, LOGGER, migrate, type Logger, type Outbox, type Pool, type Redis } from '@ai-platform/platform';
import type { Kafka } from 'kafkajs';
import { KillSwitch } from '../budgets/kill-switch';
import { WebhookSender } from '../budgets/webhook-sender';
import type { BillingConfig } from '../config';
import { CreditExpiry } from '../credits/credit-expiry';
import { PriceBook } from '../prices/price-book';
import { ExpirySweeper } from '../reservations/expiry-sweeper';
import { AutoTopUp } from '../stripe/auto-top-up';
import { MeterReporter } from '../stripe/meter-reporter';
import { UsageConsumer } from '../usage/usage-consumer';
import { KAFKA, OUTBOX, PG_POOL, REDIS } from './tokens';

/** services/billing/migrations, from src/infra (tests) and dist/infra (build) alike. */
export const MIGRATIONS_DIR = path.resolve(__dirname, '../../migrations');

/**
 * Start and stop in one place, in order: migrations, prices and readiness
 * checks, then topics, the usage consumer and the background workers (expiry,
 * credit expiry, alert outbox, webhooks, kill-switch reconcile, Stripe meter
 * reports, auto top-up); on shutdown the reverse, the pool last.
 */
@Injectable()
export class BillingLifecycle implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  private creditTimer?: NodeJS.Timeout;

  constructor(
    @Inject(CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(KAFKA) private readonly kafka: Kafka,
    @Inject(REDIS) private readonly redis: Redis | undefined,
    @Inject(OUTBOX) private readonly outbox: Outbox,
    @Inject(HealthRegistry) private readonly health: HealthRegistry,
    @Inject(UsageConsumer) private readonly consumer: UsageConsumer,
    @Inject(ExpirySweeper) private readonly sweeper: ExpirySweeper,
    @Inject(PriceBook) private readonly prices: PriceBook,
    @Inject(CreditExpiry) private readonly creditExpiry: CreditExpiry,
    @Inject(WebhookSender) private readonly webhooks: WebhookSender,
    @Inject(KillSwitch) private readonly killSwitch: KillSwitch,
    @Inject(MeterReporter) private readonly meter: MeterReporter,
    @Inject(AutoTopUp) private readonly autoTopUp: AutoTopUp,
  ) {}

  async onModuleInit(): Promise<void> {
    await migrate(this.pool, 'billing', MIGRATIONS_DIR, this.logger);
    await this.prices.seed();
    await this.outbox.ensureTable();
    this.health.register('postgres', async () => {
      await this.pool.query('SELECT 1');
    });
    if (this.config.USAGE_CONSUMER_ENABLED) {
      this.health.register('usage-consumer', async () => {
        if (!this.consumer.isRunning) throw new Error('usage consumer is not running');
      });
    }
  }

  async onApplicationBootstrap(): Promise<void> {
    await ensureTopics(this.kafka, [{ topic: this.config.USAGE_TOPIC }, { topic: this.config.USAGE_DLQ_TOPIC }, { topic: Topics.billingAlerts }]);
    if (this.config.USAGE_CONSUMER_ENABLED) await this.consumer.start();
    else this.logger.info('usage consumer disabled (USAGE_CONSUMER_ENABLED=false): another deployment settles usage');
    this.sweeper.start();
    this.prices.startRefresh(this.config.PRICE_RELOAD_MS);
    this.outbox.start();
    this.webhooks.start(this.config.WEBHOOK_DELIVERY_INTERVAL_MS);
    this.killSwitch.start(this.config.KILL_SWITCH_RECONCILE_MS);
    void this.killSwitch.reconcile();
    this.meter.start();
    this.autoTopUp.start();
    this.creditTimer = setInterval(
      () => void this.creditExpiry.sweepOnce().catch((error) => this.logger.warn({ err: error }, 'credit expiry sweep failed')),
      this.config.EXPIRY_SWEEP_INTERVAL_SECONDS * 1000,
    );
    this.creditTimer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.creditTimer);
    this.prices.stop();
    await this.sweeper.stop();
    await this.consumer.stop().catch((error) => this.logger.warn({ err: error }, 'usage consumer did not stop cleanly'));
    await Promise.all([this.webhooks.stop(), this.killSwitch.stop(), this.meter.stop(), this.autoTopUp.stop()]);
    await this.outbox.stop();
    this.redis?.disconnect();
    await this.pool.end();
    this.logger.info('billing resources closed');
  }
}
