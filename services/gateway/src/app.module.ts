import path from 'node:path';
import { Module } from '@nestjs/common';
import { databaseProvider } from '@ai-platform/platform';
import { IdentityStore } from './auth/identity.store';
import { BillingController } from './billing/billing.controller';
import { ChatCompletionsController } from './openai/chat-completions.controller';
import { ModelCatalog } from './openai/model-catalog';
import { ModelsController } from './openai/models.controller';
import { UpstreamClients } from './upstream/upstream.clients';

export const MIGRATIONS_DIR = path.resolve(__dirname, '../migrations');

@Module({
  controllers: [ChatCompletionsController, ModelsController, BillingController],
  providers: [databaseProvider('gateway', MIGRATIONS_DIR), IdentityStore, UpstreamClients, ModelCatalog],
})
export class AppModule {}
