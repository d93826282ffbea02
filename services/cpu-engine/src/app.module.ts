import { Module } from '@nestjs/common';
import { EmbeddingEngine } from './engine/embedding-engine';
import { LlamaEngine } from './engine/llama-engine';
import { ChatController } from './openai/chat.controller';
import { CompletionRunner } from './openai/completion-runner';
import { CompletionsController } from './openai/completions.controller';
import { EmbeddingsController } from './openai/embeddings.controller';
import { ModelsController } from './openai/models.controller';
import { TokenizeController } from './openai/tokenize.controller';

@Module({
  controllers: [ChatController, CompletionsController, EmbeddingsController, ModelsController, TokenizeController],
  providers: [LlamaEngine, EmbeddingEngine, CompletionRunner],
})
export class AppModule {}
