import { Module } from '@nestjs/common';
import { CONFIG, createKafka, createPool, createRedis, EventPublisher, LOGGER, Outbox, type Logger, type Pool } from '@ai-platform/platform';
import { DEFAULT_PRICES, PriceTable } from '@ai-platform/pricing';
import type { Kafka } from 'kafkajs';
import { AlertSender } from './budgets/alert-sender';
import { BudgetService } from './budgets/budget.service';
import { KillSwitch } from './budgets/kill-switch';
import { WebhookSender } from './budgets/webhook-sender';
import type { BillingConfig } from './config';
import { CreditExpiry } from './credits/credit-expiry';
import { CreditService } from './credits/credit.service';
import { BillingLifecycle } from './infra/lifecycle';
import { KAFKA, OUTBOX, PG_POOL, PRICE_TABLE, REDIS, STRIPE } from './infra/tokens';
import { Ledger } from './ledger/ledger';
import { PriceBook } from './prices/price-book';
import { BillingQueries } from './queries/billing-queries';
import { AdminOperations } from './queries/admin-operations';
import { BillingGrpcHandler } from './reservations/billing.grpc';
import { ExpirySweeper } from './reservations/expiry-sweeper';
import { ReservationService } from './reservations/reservation.service';
import { AutoTopUp } from './stripe/auto-top-up';
import { StripeCustomers } from './stripe/customers';
import { MeterReporter } from './stripe/meter-reporter';
import { createStripe } from './stripe/stripe.client';
import { TopUps } from './stripe/top-ups';
import { StripeWebhooks } from './stripe/webhooks';
import { BatchSettlement } from './usage/batch-settlement';
import { UsageConsumer } from './usage/usage-consumer';
import { UsageSettlement } from './usage/usage-settlement';

@Module({
  providers: [
    {
      provide: PG_POOL,
      inject: [CONFIG],
      useFactory: (config: BillingConfig) => createPool(config.DATABASE_URL, { max: config.DATABASE_POOL_MAX, applicationName: 'billing' }),
    },
    {
      provide: KAFKA,
      inject: [CONFIG, LOGGER],
      useFactory: (config: BillingConfig, logger: Logger) => createKafka(config.KAFKA_BROKERS, 'billing', logger),
    },
    {
      provide: PRICE_TABLE,
      inject: [CONFIG],
      useFactory: (config: BillingConfig) => new PriceTable(config.MODEL_PRICES_JSON ?? DEFAULT_PRICES),
    },
    { provide: REDIS, inject: [CONFIG], useFactory: (config: BillingConfig) => (config.REDIS_URL ? createRedis(config.REDIS_URL, { name: 'billing', commandTimeoutMs: 1_000 }) : undefined) },
    { provide: STRIPE, inject: [CONFIG], useFactory: (config: BillingConfig) => createStripe(config) },
    {
      provide: OUTBOX,
      inject: [PG_POOL, KAFKA, LOGGER],
      useFactory: (pool: Pool, kafka: Kafka, logger: Logger) => new Outbox(pool, 'billing', new EventPublisher(kafka), logger),
    },
    Ledger,
    PriceBook,
    CreditService,
    CreditExpiry,
    AlertSender,
    KillSwitch,
    WebhookSender,
    BudgetService,
    ReservationService,
    BillingQueries,
    AdminOperations,
    BillingGrpcHandler,
    ExpirySweeper,
    UsageSettlement,
    BatchSettlement,
    UsageConsumer,
    StripeCustomers,
    MeterReporter,
    TopUps,
    AutoTopUp,
    StripeWebhooks,
    BillingLifecycle,
  ],
})
export class AppModule {}
