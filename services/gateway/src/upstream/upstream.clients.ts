import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { billing, orchestrator } from '@ai-platform/contracts';
import { CONFIG, createGrpcClient, type ServiceClient } from '@ai-platform/platform';
import type { GatewayConfig } from '../config';

/** gRPC clients of the services behind the gateway. */
@Injectable()
export class UpstreamClients implements OnApplicationShutdown {
  readonly orchestrator: ServiceClient<typeof orchestrator.ChatService>;
  readonly billing: ServiceClient<typeof billing.BillingService>;
  readonly conversations: ServiceClient<typeof orchestrator.ConversationService>;

  constructor(@Inject(CONFIG) config: GatewayConfig) {
    this.orchestrator = createGrpcClient(orchestrator.ChatService, config.ORCHESTRATOR_URL, { defaultTimeoutMs: config.UPSTREAM_TIMEOUT_MS });
    this.billing = createGrpcClient(billing.BillingService, config.BILLING_URL, { defaultTimeoutMs: 5_000 });
    this.conversations = createGrpcClient(orchestrator.ConversationService, config.ORCHESTRATOR_URL, { defaultTimeoutMs: 5_000 });
  }

  onApplicationShutdown(): void {
    this.orchestrator.close();
    this.billing.close();
    this.conversations.close();
  }
}
