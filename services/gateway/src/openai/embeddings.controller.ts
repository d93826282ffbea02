import { Controller, HttpCode, Inject, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '@ai-platform/platform';
import { authenticate } from '../auth/authenticate';
import { embeddingsRequest, parseBody } from '../product/schemas';
import { ModelCatalog } from './model-catalog';

/**
 * `POST /v1/embeddings`. The engine pool serves no embedding model yet, so a
 * valid request gets OpenAI's 404 for a model that does not exist, or a 400
 * when it names a chat model. Nothing is reserved or charged.
 */
@Controller('v1')
export class EmbeddingsController {
  constructor(@Inject(ModelCatalog) private readonly catalog: ModelCatalog) {}

  @Post('embeddings')
  @HttpCode(200)
  async create(@Req() request: FastifyRequest): Promise<never> {
    await authenticate(request);
    const body = parseBody(embeddingsRequest, request.body);
    const served = (await this.catalog.list()).some((model) => model.id === body.model);
    if (served) throw ApiError.badRequest(`The model \`${body.model}\` is a chat model and does not support embeddings.`, 'model', 'model_not_supported');
    throw new ApiError(404, 'invalid_request_error', `The model \`${body.model}\` does not exist or you do not have access to it. No embedding model is served yet.`, 'model_not_found', 'model');
  }
}
