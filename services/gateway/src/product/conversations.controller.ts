import { Controller, Delete, Get, HttpCode, Inject, Param, Patch, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import type { orchestrator } from '@ai-platform/contracts';
import { ApiError, runWithContext } from '@ai-platform/platform';
import { authenticate } from '../auth/authenticate';
import type { Principal } from '../auth/principal';
import { toPublicError } from '../openai/chat-turn';
import { UpstreamClients } from '../upstream/upstream.clients';
import { parseBody, renameConversationRequest } from './schemas';

const iso = (value: Timestamp | undefined) => (value ? new Date(Number(value.seconds) * 1000 + Math.floor(value.nanos / 1e6)).toISOString() : null);
const summary = (c: orchestrator.ConversationSummary | undefined) =>
  c && { id: c.id, object: 'conversation', title: c.title || null, model: c.model, created_at: iso(c.createdAt), updated_at: iso(c.updatedAt) };

/** The caller's own conversations (tenant and user scoped by the orchestrator). */
@Controller('api/conversations')
export class ConversationsController {
  constructor(@Inject(UpstreamClients) private readonly upstream: UpstreamClients) {}

  private call<T>(request: FastifyRequest, fn: (principal: Principal) => Promise<T>): Promise<T> {
    return authenticate(request).then((principal) =>
      runWithContext({ tenantId: principal.tenantId, userId: principal.userId, requestId: request.requestId }, () =>
        fn(principal).catch((error) => {
          throw toPublicError(error);
        }),
      ),
    );
  }

  @Get()
  list(@Req() request: FastifyRequest, @Query('limit') limit?: string, @Query('cursor') cursor?: string) {
    const n = limit === undefined ? 20 : Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > 100) throw ApiError.badRequest('limit must be an integer from 1 to 100', 'limit');
    if (cursor !== undefined && (typeof cursor !== 'string' || cursor.length > 200)) throw ApiError.badRequest('invalid cursor', 'cursor');
    return this.call(request, async () => {
      const page = await this.upstream.conversations.listConversations({ limit: n, cursor: cursor ?? '' });
      return { object: 'list', data: page.conversations.map(summary), next_cursor: page.nextCursor || null };
    });
  }

  @Get(':id')
  get(@Req() request: FastifyRequest, @Param('id') id: string) {
    return this.call(request, async () => {
      const found = await this.upstream.conversations.getConversation({ conversationId: id });
      return {
        ...summary(found.conversation),
        messages: found.messages.map((m) => ({ id: m.id, role: m.role, content: m.content, status: m.status, created_at: iso(m.createdAt) })),
      };
    });
  }

  @Patch(':id')
  rename(@Req() request: FastifyRequest, @Param('id') id: string) {
    const body = parseBody(renameConversationRequest, request.body);
    return this.call(request, async () => summary((await this.upstream.conversations.renameConversation({ conversationId: id, title: body.title })).conversation));
  }

  @Delete(':id')
  @HttpCode(200)
  remove(@Req() request: FastifyRequest, @Param('id') id: string) {
    return this.call(request, async () => {
      await this.upstream.conversations.deleteConversation({ conversationId: id });
      return { id, object: 'conversation.deleted', deleted: true };
    });
  }
}
