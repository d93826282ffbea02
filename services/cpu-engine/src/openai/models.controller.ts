import { Controller, Get, Inject, Param, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ApiError, type ApiErrorType } from '@ai-platform/platform';
import { LlamaEngine } from '../engine/llama-engine';

const STARTED = Math.floor(Date.now() / 1000);

/** vLLM's model listing and liveness. */
@Controller()
export class ModelsController {
  constructor(@Inject(LlamaEngine) private readonly engine: LlamaEngine) {}

  @Get('v1/models')
  list() {
    return { object: 'list', data: [this.card()] };
  }

  @Get('v1/models/:id')
  retrieve(@Param('id') id: string) {
    if (id !== this.engine.modelName) throw new ApiError(404, 'NotFoundError' as ApiErrorType, `The model \`${id}\` does not exist.`, 'model_not_found', 'model');
    return this.card();
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
