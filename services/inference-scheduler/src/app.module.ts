import { Module } from '@nestjs/common';
import { CONFIG, LOGGER, type Logger } from '@ai-platform/platform';
import { PriceTable } from '@ai-platform/pricing';
import type { SchedulerConfig } from './config';
import { EndpointSliceDiscovery } from './engines/discovery/endpoint-slice-discovery';
import { EnginePool } from './engines/engine-pool';
import { FlowController, saturationLimits } from './flow/flow-controller';
import { EngineSelector } from './generation/engine-selector';
import { EmbeddingService } from './generation/embedding.service';
import { GenerationService } from './generation/generation.service';
import { InferenceGrpcHandler } from './inference.grpc';
import { UsageOutbox } from './metering/usage-outbox';
import { PRICE_TABLE, UsageRecorder } from './metering/usage-recorder';
import { ProviderRegistry } from './providers/provider-registry';
import { ENGINE_PICKER } from './routing/picker';
import { buildRoutingPipeline } from './routing/routing-config';

@Module({
  providers: [
    EnginePool,
    EndpointSliceDiscovery,
    ProviderRegistry,
    FlowController,
    EngineSelector,
    UsageOutbox,
    UsageRecorder,
    GenerationService,
    EmbeddingService,
    InferenceGrpcHandler,
    {
      provide: ENGINE_PICKER,
      inject: [CONFIG, LOGGER],
      useFactory: (config: SchedulerConfig, logger: Logger) =>
        buildRoutingPipeline(
          { strategy: config.ROUTING_STRATEGY, scorers: config.ROUTING_SCORERS, prefixMaxImbalance: config.ROUTING_PREFIX_MAX_IMBALANCE, saturation: saturationLimits(config) },
          logger,
        ),
    },
    { provide: PRICE_TABLE, useFactory: () => new PriceTable() },
  ],
})
export class AppModule {}
