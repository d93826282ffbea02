import path from 'node:path';
import { Module } from '@nestjs/common';
import { databaseProvider } from '@ai-platform/platform';
import { ChatHandler } from './chat/chat.handler';
import { ConversationQueries } from './conversations/conversation.queries';
import { ConversationStore } from './conversations/conversation.store';
import { ConversationsHandler } from './conversations/conversations.handler';

@Module({
  providers: [databaseProvider('orchestrator', path.resolve(__dirname, '../migrations')), ConversationStore, ConversationQueries, ChatHandler, ConversationsHandler],
})
export class AppModule {}
