import { Module } from '@nestjs/common';
import { PriceTable } from '@ai-platform/pricing';
import { EnginePool } from './engines/engine-pool';
import { GenerationService } from './generation/generation.service';
import { InferenceGrpcHandler } from './inference.grpc';
import { UsageOutbox } from './metering/usage-outbox';
import { PRICE_TABLE, UsageRecorder } from './metering/usage-recorder';
import { ENGINE_PICKER, LeastLoadPicker } from './routing/picker';

@Module({
  providers: [
    EnginePool,
    UsageOutbox,
    UsageRecorder,
    GenerationService,
    InferenceGrpcHandler,
    { provide: ENGINE_PICKER, useFactory: () => new LeastLoadPicker() },
    { provide: PRICE_TABLE, useFactory: () => new PriceTable() },
  ],
})
export class AppModule {}
