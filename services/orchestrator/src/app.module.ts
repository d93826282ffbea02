import { Module } from '@nestjs/common';
import { ChatHandler } from './chat/chat.handler';
import { ConversationStore } from './conversations/conversation.store';

@Module({ providers: [ConversationStore, ChatHandler] })
export class AppModule {}
