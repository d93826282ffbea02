import path from 'node:path';
import { Module } from '@nestjs/common';
import { databaseProvider } from '@ai-platform/platform';
import { IdentityStore } from './auth/identity.store';
import { BillingController } from './billing/billing.controller';
import { ChatCompletionsController } from './openai/chat-completions.controller';
import { ModelCatalog } from './openai/model-catalog';
import { ModelsController } from './openai/models.controller';
import { UpstreamClients } from './upstream/upstream.clients';
import { Authenticator } from './auth/authenticator';
import { TurnService } from './chat/turn.service';
import { IdempotencyStore } from './idempotency/idempotency.store';
import { RateLimiter } from './limits/rate-limiter';
import { GatewayRedis } from './redis/gateway-redis';
import { AdminController } from './admin/admin.controller';
import { OpenApiController } from './docs/openapi.controller';
import { JobsController } from './jobs/jobs.controller';
import { JobsService } from './jobs/jobs.service';
import { EmbeddingsController } from './openai/embeddings.controller';
import { ConversationsController } from './product/conversations.controller';
import { UiChatController } from './product/ui-chat.controller';
import { UsageController } from './product/usage.controller';
import { WebhookDispatcher } from './webhooks/webhook.dispatcher';
import { WebhookStore } from './webhooks/webhook.store';
import { WebhooksController } from './webhooks/webhooks.controller';

export const MIGRATIONS_DIR = path.resolve(__dirname, '../migrations');

@Module({
  controllers: [
    ChatCompletionsController, ModelsController, EmbeddingsController, UiChatController, ConversationsController, UsageController,
    JobsController, WebhooksController, AdminController, OpenApiController, BillingController,
  ],
  providers: [
    databaseProvider('gateway', MIGRATIONS_DIR), IdentityStore, UpstreamClients, ModelCatalog,
    GatewayRedis, Authenticator, RateLimiter, IdempotencyStore, TurnService, WebhookStore, WebhookDispatcher, JobsService,
  ],
})
export class AppModule {}
