import { Inject, Injectable } from '@nestjs/common';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { orchestrator } from '@ai-platform/contracts';
import { GrpcError, GrpcStatus, type CallInfo } from '@ai-platform/platform';
import { ConversationQueries, type ConversationRow } from './conversation.queries';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function owner(call: CallInfo): { tenantId: string; userId: string } {
  const { tenantId, userId } = call.context;
  if (!tenantId || !userId) throw new GrpcError(GrpcStatus.UNAUTHENTICATED, 'x-tenant-id and x-user-id metadata are required');
  return { tenantId, userId };
}

function conversationId(id: string): string {
  if (!UUID.test(id)) throw new GrpcError(GrpcStatus.NOT_FOUND, `conversation ${id.slice(0, 64)} not found`);
  return id;
}

const summary = (row: ConversationRow) => ({ id: row.id, title: row.title, model: row.model, createdAt: timestampFromDate(row.createdAt), updatedAt: timestampFromDate(row.updatedAt) });

/** gRPC ConversationService: list, read, rename and delete the caller's conversations. */
@Injectable()
export class ConversationsHandler {
  constructor(@Inject(ConversationQueries) private readonly queries: ConversationQueries) {}

  async listConversations(request: orchestrator.ListConversationsRequest, call: CallInfo): Promise<MessageInitShape<typeof orchestrator.ListConversationsResponseSchema>> {
    const { tenantId, userId } = owner(call);
    const limit = request.limit === 0 ? 20 : Math.min(request.limit, 100);
    let cursor: { updatedAt: Date; id: string } | undefined;
    if (request.cursor) {
      const [at, id] = request.cursor.split('|');
      const updatedAt = new Date(at ?? '');
      if (!id || !UUID.test(id) || Number.isNaN(updatedAt.getTime())) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'invalid cursor');
      cursor = { updatedAt, id };
    }
    const rows = await this.queries.list(tenantId, userId, limit, cursor);
    const last = rows.length === limit ? rows[rows.length - 1] : undefined;
    return { conversations: rows.map(summary), nextCursor: last ? `${last.updatedAt.toISOString()}|${last.id}` : '' };
  }

  async getConversation(request: orchestrator.GetConversationRequest, call: CallInfo): Promise<MessageInitShape<typeof orchestrator.GetConversationResponseSchema>> {
    const { tenantId, userId } = owner(call);
    const found = await this.queries.get(tenantId, userId, conversationId(request.conversationId));
    if (!found) throw new GrpcError(GrpcStatus.NOT_FOUND, `conversation ${request.conversationId} not found`);
    return {
      conversation: summary(found.conversation),
      messages: found.messages.map((message) => ({ id: message.id, role: message.role, content: message.content, status: message.status, createdAt: timestampFromDate(message.createdAt) })),
    };
  }

  async renameConversation(request: orchestrator.RenameConversationRequest, call: CallInfo): Promise<MessageInitShape<typeof orchestrator.RenameConversationResponseSchema>> {
    const { tenantId, userId } = owner(call);
    const title = request.title.trim();
    if (!title || title.length > 200) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'title must be 1 to 200 characters');
    const row = await this.queries.rename(tenantId, userId, conversationId(request.conversationId), title);
    if (!row) throw new GrpcError(GrpcStatus.NOT_FOUND, `conversation ${request.conversationId} not found`);
    return { conversation: summary(row) };
  }

  async deleteConversation(request: orchestrator.DeleteConversationRequest, call: CallInfo): Promise<MessageInitShape<typeof orchestrator.DeleteConversationResponseSchema>> {
    const { tenantId, userId } = owner(call);
    if (!(await this.queries.delete(tenantId, userId, conversationId(request.conversationId)))) {
      throw new GrpcError(GrpcStatus.NOT_FOUND, `conversation ${request.conversationId} not found`);
    }
    return {};
  }
}
