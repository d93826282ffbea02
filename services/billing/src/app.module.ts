import { Module } from '@nestjs/common';
import { CONFIG, createKafka, createPool, LOGGER, type Logger } from '@ai-platform/platform';
import { DEFAULT_PRICES, PriceTable } from '@ai-platform/pricing';
import type { BillingConfig } from './config';
import { BillingLifecycle } from './infra/lifecycle';
import { KAFKA, PG_POOL, PRICE_TABLE } from './infra/tokens';
import { Ledger } from './ledger/ledger';
import { BillingGrpcHandler } from './reservations/billing.grpc';
import { ExpirySweeper } from './reservations/expiry-sweeper';
import { ReservationService } from './reservations/reservation.service';
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
    Ledger,
    ReservationService,
    BillingGrpcHandler,
    ExpirySweeper,
    UsageSettlement,
    UsageConsumer,
    BillingLifecycle,
  ],
})
export class AppModule {}
