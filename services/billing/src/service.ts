import { billing } from '@ai-platform/contracts';
import { bootstrapService } from '@ai-platform/platform';
import { AppModule } from './app.module';
import { billingConfigSchema } from './config';
import { BillingGrpcHandler } from './reservations/billing.grpc';

/** Starts the billing service from the environment (main.ts and the tests). */
export function startBilling() {
  return bootstrapService({
    name: 'billing',
    configSchema: billingConfigSchema,
    module: AppModule,
    grpc: { port: (config) => config.GRPC_PORT, services: [{ service: billing.BillingService, implementation: BillingGrpcHandler }] },
  });
}
