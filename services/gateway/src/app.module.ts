import { Module } from '@nestjs/common';
import { IdentityStore } from './auth/identity.store';
import { ChatCompletionsController } from './openai/chat-completions.controller';
import { ModelCatalog } from './openai/model-catalog';
import { ModelsController } from './openai/models.controller';
import { UpstreamClients } from './upstream/upstream.clients';

@Module({
  controllers: [ChatCompletionsController, ModelsController],
  providers: [IdentityStore, UpstreamClients, ModelCatalog],
})
export class AppModule {}
