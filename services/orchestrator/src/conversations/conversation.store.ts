import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { Database, withTenantTransaction, type Pool } from '@ai-platform/platform';

export interface StoredMessage {
  role: string;
  content: string;
}

export interface Conversation {
  id: string;
  tenantId: string;
  userId: string;
  model: string;
  /** Not written yet: its first appendTurn creates it in the same round trip. */
  unsaved?: boolean;
}

/** Conversations and their messages, always read and written inside the tenant's RLS scope. */
@Injectable()
export class ConversationStore {
  private readonly pool: Pool;

  constructor(@Inject(Database) database: Database) {
    this.pool = database.pool;
  }

  /** Returns the conversation if it belongs to this tenant and user; undefined otherwise. */
  async find(tenantId: string, userId: string, conversationId: string): Promise<Conversation | undefined> {
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      const { rows } = await client.query(
        `SELECT id, tenant_id, user_id, model FROM orchestrator.conversations WHERE id = $1 AND tenant_id = $2 AND user_id = $3`,
        [conversationId, tenantId, userId],
      );
      const row = rows[0];
      return row ? { id: row.id, tenantId: row.tenant_id, userId: row.user_id, model: row.model } : undefined;
    });
  }

  /** One round trip (orchestrator.create_conversation, migration 002). */
  async create(tenantId: string, userId: string, model: string): Promise<Conversation> {
    const id = randomUUID();
    await this.pool.query(`SELECT orchestrator.create_conversation($1, $2, $3, $4)`, [id, tenantId, userId, model]);
    return { id, tenantId, userId, model };
  }

  /** A new conversation that is written with its first turn (appendTurn), saving a round trip before generation. */
  draft(tenantId: string, userId: string, model: string): Conversation {
    return { id: randomUUID(), tenantId, userId, model, unsaved: true };
  }

  /** The newest `limit` messages, oldest first. */
  async history(conversation: Conversation, limit: number): Promise<StoredMessage[]> {
    if (limit === 0) return [];
    return withTenantTransaction(this.pool, conversation.tenantId, async (client) => {
      const { rows } = await client.query(
        `SELECT role, content FROM (
           SELECT seq, role, content FROM orchestrator.messages WHERE conversation_id = $1 AND tenant_id = $2 ORDER BY seq DESC LIMIT $3
         ) recent ORDER BY seq`,
        [conversation.id, conversation.tenantId, limit],
      );
      return rows.map((row) => ({ role: row.role, content: row.content }));
    });
  }

  /** Stores a whole turn at once: the new messages and the assistant's answer. */
  async appendTurn(
    conversation: Conversation,
    turn: { requestId?: string; messages: StoredMessage[]; answer: string; complete: boolean; inputTokens?: number; outputTokens?: number },
  ): Promise<string> {
    const answerId = randomUUID();
    const rest = [
      turn.requestId ?? null, turn.messages.map((message) => message.role), turn.messages.map((message) => message.content),
      answerId, turn.answer, turn.complete ? 'complete' : 'incomplete', turn.inputTokens ?? null, turn.outputTokens ?? null,
    ];
    // One round trip (migrations 002, 003): for a draft the conversation first, then the messages in order, the answer, updated_at.
    // Named statements: planned once per pooled connection.
    if (conversation.unsaved) {
      await this.pool.query({
        name: 'orchestrator.append_first_turn',
        text: `SELECT orchestrator.append_first_turn($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        values: [conversation.id, conversation.tenantId, conversation.userId, conversation.model, ...rest],
      });
      conversation.unsaved = false;
    } else {
      await this.pool.query({ name: 'orchestrator.append_turn', text: `SELECT orchestrator.append_turn($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, values: [conversation.id, conversation.tenantId, ...rest] });
    }
    return answerId;
  }
}
