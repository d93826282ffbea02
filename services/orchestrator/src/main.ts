import { orchestrator } from '@ai-platform/contracts';
import { bootstrapService } from '@ai-platform/platform';
import { AppModule } from './app.module';
import { ChatHandler } from './chat/chat.handler';
import { configSchema } from './config';
import { ConversationsHandler } from './conversations/conversations.handler';

void bootstrapService({
  name: 'orchestrator',
  configSchema,
  module: AppModule,
  grpc: { port: (config) => config.GRPC_PORT, services: [
    { service: orchestrator.ChatService, implementation: ChatHandler },
    { service: orchestrator.ConversationService, implementation: ConversationsHandler },
  ] },
});
