import { Controller, Get, Inject, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { ApiError, GrpcStatus, isServiceError, runWithContext } from '@ai-platform/platform';
import { authenticate } from '../auth/authenticate';
import { toPublicError } from '../openai/chat-turn';
import { UpstreamClients } from '../upstream/upstream.clients';
import { parseBody, usageQuery } from './schemas';

/**
 * `GET /api/usage`: the caller's own usage (their user id within their
 * tenant), per day and model, from billing's ledger-exact usage summary.
 */
@Controller('api')
export class UsageController {
  constructor(@Inject(UpstreamClients) private readonly upstream: UpstreamClients) {}

  @Get('usage')
  async usage(@Req() request: FastifyRequest) {
    const principal = await authenticate(request);
    const query = parseBody(usageQuery, request.query ?? {}, 'query');
    const to = query.to ? new Date(query.to) : new Date();
    const from = query.from ? new Date(query.from) : new Date(to.getTime() - 30 * 86_400_000);
    if (from > to) throw ApiError.badRequest('from must not be after to', 'from');
    return runWithContext({ tenantId: principal.tenantId, userId: principal.userId, requestId: request.requestId }, async () => {
      let summary;
      try {
        summary = await this.upstream.billing.getUsageSummary({ tenantId: principal.tenantId, groupBy: ['day', 'model', 'user'], from: timestampFromDate(from), to: timestampFromDate(to) });
      } catch (error) {
        if (isServiceError(error) && error.code === GrpcStatus.UNIMPLEMENTED) {
          throw new ApiError(501, 'server_error', 'usage reporting is not available from billing yet', 'not_implemented');
        }
        throw toPublicError(error);
      }
      const mine = summary.groups.filter((group) => group.userId === principal.userId);
      const total = (pick: (g: (typeof mine)[number]) => bigint) => mine.reduce((sum, g) => sum + Number(pick(g)), 0);
      return {
        object: 'usage', tenant_id: principal.tenantId, user_id: principal.userId, from: from.toISOString(), to: to.toISOString(),
        totals: { requests: total((g) => g.requests), input_tokens: total((g) => g.inputTokens), output_tokens: total((g) => g.outputTokens), embedding_tokens: total((g) => g.embeddingTokens), cost_micros: total((g) => g.costMicros) },
        data: mine.map((g) => ({ day: g.day, model: g.model, requests: Number(g.requests), input_tokens: Number(g.inputTokens), cached_input_tokens: Number(g.cachedInputTokens), output_tokens: Number(g.outputTokens), embedding_tokens: Number(g.embeddingTokens), cost_micros: Number(g.costMicros) })),
      };
    });
  }
}
