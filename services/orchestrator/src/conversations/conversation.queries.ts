import { Inject, Injectable } from '@nestjs/common';
import { Database, withTenantTransaction, type Pool } from '@ai-platform/platform';

export interface ConversationRow {
  id: string;
  title: string;
  model: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface MessageRow {
  id: string;
  role: string;
  content: string;
  status: string;
  createdAt: Date;
}

const toConversation = (row: Record<string, unknown>): ConversationRow => ({
  id: row.id as string, title: (row.title as string | null) ?? '', model: row.model as string, createdAt: row.created_at as Date, updatedAt: row.updated_at as Date,
});

/**
 * The read, rename and delete side of conversations. Every query filters by
 * tenant and user and runs in the tenant's RLS scope: a conversation of
 * another tenant or user simply does not exist here.
 */
@Injectable()
export class ConversationQueries {
  private readonly pool: Pool;

  constructor(@Inject(Database) database: Database) {
    this.pool = database.pool;
  }

  /** Newest first; the cursor is `<updated_at ISO>|<id>` of the last row of the previous page. */
  async list(tenantId: string, userId: string, limit: number, cursor?: { updatedAt: Date; id: string }): Promise<ConversationRow[]> {
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      const { rows } = await client.query(
        `SELECT id, title, model, created_at, updated_at FROM orchestrator.conversations
          WHERE tenant_id = $1 AND user_id = $2 AND ($3::timestamptz IS NULL OR (updated_at, id) < ($3, $4::uuid))
          ORDER BY updated_at DESC, id DESC LIMIT $5`,
        [tenantId, userId, cursor?.updatedAt ?? null, cursor?.id ?? '00000000-0000-0000-0000-000000000000', limit],
      );
      return rows.map(toConversation);
    });
  }

  async get(tenantId: string, userId: string, id: string): Promise<{ conversation: ConversationRow; messages: MessageRow[] } | undefined> {
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      const { rows } = await client.query(
        `SELECT id, title, model, created_at, updated_at FROM orchestrator.conversations WHERE id = $1 AND tenant_id = $2 AND user_id = $3`,
        [id, tenantId, userId],
      );
      if (!rows[0]) return undefined;
      const messages = await client.query(
        `SELECT id, role, content, status, created_at FROM orchestrator.messages WHERE conversation_id = $1 AND tenant_id = $2 ORDER BY seq`,
        [id, tenantId],
      );
      return {
        conversation: toConversation(rows[0]),
        messages: messages.rows.map((row) => ({ id: row.id, role: row.role, content: row.content, status: row.status, createdAt: row.created_at })),
      };
    });
  }

  async rename(tenantId: string, userId: string, id: string, title: string): Promise<ConversationRow | undefined> {
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      const { rows } = await client.query(
        `UPDATE orchestrator.conversations SET title = $4, updated_at = now() WHERE id = $1 AND tenant_id = $2 AND user_id = $3
         RETURNING id, title, model, created_at, updated_at`,
        [id, tenantId, userId, title],
      );
      return rows[0] ? toConversation(rows[0]) : undefined;
    });
  }

  /** Deletes the conversation and (by cascade) its messages. */
  async delete(tenantId: string, userId: string, id: string): Promise<boolean> {
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      const result = await client.query(`DELETE FROM orchestrator.conversations WHERE id = $1 AND tenant_id = $2 AND user_id = $3`, [id, tenantId, userId]);
      return (result.rowCount ?? 0) > 0;
    });
  }
}
