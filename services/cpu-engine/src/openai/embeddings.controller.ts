import { Body, Controller, HttpCode, Inject, Post, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ApiError, type ApiErrorType } from '@ai-platform/platform';
import { EmbeddingEngine, InputTooLongError } from '../engine/embedding-engine';
import { EngineNotReadyError } from '../engine/llama-engine';
import { embeddingsSchema, parseBody } from './schemas';

/**
 * `POST /v1/embeddings` in OpenAI's (and vLLM's) shape: one L2-normalised vector
 * per input, in input order, as floats or as base64 of little-endian float32,
 * with the tokens read as usage.
 */
@Controller('v1')
export class EmbeddingsController {
  constructor(@Inject(EmbeddingEngine) private readonly engine: EmbeddingEngine) {}

  @Post('embeddings')
  @HttpCode(200)
  async create(@Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    const input = parseBody(embeddingsSchema, body);
    if (!this.engine.configured || input.model !== this.engine.modelName) {
      throw new ApiError(404, 'NotFoundError' as ApiErrorType, `The model \`${input.model}\` does not exist.`, 'model_not_found', 'model');
    }
    const texts = typeof input.input === 'string' ? [input.input] : input.input;
    if (texts.length > this.engine.maxInputs) throw ApiError.badRequest(`input: at most ${this.engine.maxInputs} inputs per request`, 'input');
    if (input.dimensions != null && input.dimensions !== this.engine.dimensions) {
      throw ApiError.badRequest(`dimensions: this model's embeddings have ${this.engine.dimensions} dimensions and cannot be shortened`, 'dimensions');
    }
    const gone = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) gone.abort(new Error('client went away'));
    });
    let embeddings;
    try {
      embeddings = await this.engine.embed(texts, gone.signal);
    } catch (error) {
      if (error instanceof InputTooLongError) throw ApiError.badRequest(error.message, `input[${error.index}]`, 'context_length_exceeded');
      if (error instanceof EngineNotReadyError) throw ApiError.unavailable(error.message, 1);
      throw error;
    }
    const tokens = embeddings.reduce((sum, embedding) => sum + embedding.tokens, 0);
    return {
      object: 'list',
      data: embeddings.map((embedding, index) => ({
        object: 'embedding',
        index,
        embedding: input.encoding_format === 'base64' ? Buffer.from(new Float32Array(embedding.vector).buffer).toString('base64') : embedding.vector,
      })),
      model: this.engine.modelName,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    };
  }
}
