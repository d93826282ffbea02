import { inference } from '@ai-platform/contracts';
import type { ServiceDefinition } from '@ai-platform/platform';
import { AppModule } from './app.module';
import { configSchema } from './config';
import { InferenceGrpcHandler } from './inference.grpc';

export const inferenceScheduler: ServiceDefinition<typeof configSchema> = {
  name: 'inference-scheduler',
  configSchema,
  module: AppModule,
  grpc: { port: (config) => config.GRPC_PORT, services: [{ service: inference.InferenceService, implementation: InferenceGrpcHandler }] },
};
