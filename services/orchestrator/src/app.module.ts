import path from 'node:path';
import { Module } from '@nestjs/common';
import { databaseProvider } from '@ai-platform/platform';
import { ChatHandler } from './chat/chat.handler';
import { ConversationStore } from './conversations/conversation.store';

@Module({ providers: [databaseProvider('orchestrator', path.resolve(__dirname, '../migrations')), ConversationStore, ChatHandler] })
export class AppModule {}
