import { Module } from '@nestjs/common';
import { LlamaEngine } from './engine/llama-engine';
import { ChatController } from './openai/chat.controller';
import { CompletionRunner } from './openai/completion-runner';
import { CompletionsController } from './openai/completions.controller';
import { ModelsController } from './openai/models.controller';
import { TokenizeController } from './openai/tokenize.controller';

@Module({
  controllers: [ChatController, CompletionsController, ModelsController, TokenizeController],
  providers: [LlamaEngine, CompletionRunner],
})
export class AppModule {}
