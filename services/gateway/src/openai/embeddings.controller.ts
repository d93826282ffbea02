import { Controller, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, LOGGER, runWithContext, type Logger } from '@ai-platform/platform';
import { costMicros, PriceTable, worstCaseCostMicros } from '@ai-platform/pricing';
import { authenticate } from '../auth/authenticate';
import { enforceKillSwitch } from '../billing/kill-switch.guard';
import { RateLimiter } from '../limits/rate-limiter';
import { embeddingsRequest, parseBody } from '../product/schemas';
import { UpstreamClients } from '../upstream/upstream.clients';
import { releaseHold, takeHold, toPublicError } from './chat-turn';

/**
 * At most the tokens a WordPiece model reads from `text`: every piece covers at
 * least one character (one UTF-8 byte or more), plus [CLS] and [SEP].
 */
export function worstCaseEmbeddingTokens(inputs: string[]): number {
  return inputs.reduce((sum, text) => sum + Buffer.byteLength(text, 'utf8') + 2, 0);
}

/**
 * `POST /v1/embeddings`, OpenAI's shape: the kill switch, the caller's limits and
 * a billing hold for the worst case, then the orchestrator's Embed (scheduler →
 * an engine serving the model), which meters the call; the hold settles to the
 * tokens the model read. A model without a price is not served here: 404.
 */
@Controller('v1')
export class EmbeddingsController {
  private readonly prices = new PriceTable();

  constructor(
    @Inject(UpstreamClients) private readonly upstream: UpstreamClients,
    @Inject(RateLimiter) private readonly limiter: RateLimiter,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @Post('embeddings')
  @HttpCode(200)
  async create(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply) {
    const principal = await authenticate(request);
    const body = parseBody(embeddingsRequest, request.body);
    const price = this.prices.get(body.model);
    if (!price || !price.embeddingMicrosPerMillion) {
      throw new ApiError(404, 'invalid_request_error', `The model \`${body.model}\` does not exist or is not an embedding model.`, 'model_not_found', 'model');
    }
    if (body.dimensions !== undefined) throw ApiError.badRequest('dimensions is not supported: the embedding models served here have a fixed size', 'dimensions');
    const inputs = typeof body.input === 'string' ? [body.input] : body.input;
    if (!inputs.every((item): item is string => typeof item === 'string')) throw ApiError.badRequest('input: token-id arrays are not supported; send text', 'input');
    const empty = inputs.findIndex((item) => item.length === 0);
    if (empty >= 0) throw ApiError.badRequest(`input[${empty}] must not be empty`, `input[${empty}]`);

    return runWithContext({ tenantId: principal.tenantId, userId: principal.userId, requestId: request.requestId }, async () => {
      await enforceKillSwitch(principal);
      const estimate = worstCaseEmbeddingTokens(inputs);
      const admission = await this.limiter.admit(principal, request.requestId, { tokens: estimate, costMicros: worstCaseCostMicros(price, estimate, 0) });
      let reservationId: string;
      try {
        reservationId = await takeHold(this.upstream, principal, request.requestId, body.model, estimate, 0);
      } catch (error) {
        await admission.settle({ tokens: 0, costMicros: 0 });
        throw error;
      }
      const gone = new AbortController();
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) gone.abort();
      });
      let result;
      try {
        result = await this.upstream.orchestrator.embed({ model: body.model, inputs, reservationId, apiKeyId: principal.apiKeyId }, { signal: gone.signal });
      } catch (error) {
        // The scheduler meters every call an engine took, which settles the hold; this frees one no engine took.
        await releaseHold(this.upstream, reservationId, 'embedding did not run', this.logger);
        await admission.settle({ tokens: 0, costMicros: 0 });
        throw toPublicError(error);
      }
      void admission.settle({ tokens: result.tokens, costMicros: costMicros(price, { inputTokens: 0, outputTokens: 0, embeddingTokens: result.tokens }) });
      void reply.headers({ ...admission.headers, 'x-request-id': request.requestId });
      return {
        object: 'list',
        data: result.embeddings.map((embedding, index) => ({
          object: 'embedding',
          index,
          embedding: body.encoding_format === 'base64' ? Buffer.from(new Float32Array(embedding.values).buffer).toString('base64') : embedding.values,
        })),
        model: body.model,
        usage: { prompt_tokens: result.tokens, total_tokens: result.tokens },
      };
    });
  }
}
