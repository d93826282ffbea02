import { Controller, Get, Inject, Param, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ApiError, type ApiErrorType } from '@ai-platform/platform';
import { EmbeddingEngine } from '../engine/embedding-engine';
import { LlamaEngine } from '../engine/llama-engine';

const STARTED = Math.floor(Date.now() / 1000);

/**
 * vLLM's model listing and liveness. The embedding model, when configured, is
 * listed too, marked `"task": "embed"` (not a vLLM field) so that a scheduler
 * never routes a chat request to it.
 */
@Controller()
export class ModelsController {
  constructor(
    @Inject(LlamaEngine) private readonly engine: LlamaEngine,
    @Inject(EmbeddingEngine) private readonly embeddings: EmbeddingEngine,
  ) {}

  @Get('v1/models')
  list() {
    return { object: 'list', data: [this.card(), ...(this.embeddings.configured ? [this.embeddingCard()] : [])] };
  }

  @Get('v1/models/:id')
  retrieve(@Param('id') id: string) {
    if (id === this.engine.modelName) return this.card();
    if (this.embeddings.configured && id === this.embeddings.modelName) return this.embeddingCard();
    throw new ApiError(404, 'NotFoundError' as ApiErrorType, `The model \`${id}\` does not exist.`, 'model_not_found', 'model');
  }

  private embeddingCard() {
    return {
      id: this.embeddings.modelName,
      object: 'model',
      created: STARTED,
      owned_by: 'vllm',
      root: this.embeddings.modelPath,
      parent: null,
      max_model_len: this.embeddings.maxInputTokens,
      task: 'embed',
      permission: [],
    };
  }

  /** vLLM's `/health`: 200 with an empty body while the engine can serve. */
  @Get('health')
  async health(@Res() reply: FastifyReply) {
    if (this.engine.ready) await reply.status(200).send('');
    else await reply.status(503).send('');
  }

  private card() {
    return {
      id: this.engine.modelName,
      object: 'model',
      created: STARTED,
      owned_by: 'vllm',
      root: this.engine.modelPath,
      parent: null,
      max_model_len: this.engine.maxModelLen,
      permission: [],
    };
  }
}
