import { Inject, Injectable } from '@nestjs/common';
import { Database, withTenantTransaction, type Pool } from '@ai-platform/platform';
import { IdentityStore } from '../auth/identity.store';
import { newWebhookSecret } from './outbound';

export interface DeadLetter {
  id: string;
  webhookId: string;
  eventId: string;
  eventType: string;
  payload: unknown;
  attempts: number;
  lastError: string;
}

/** Webhook endpoints and dead letters, always inside the tenant's scope. */
@Injectable()
export class WebhookStore {
  private readonly pool: Pool;

  constructor(@Inject(Database) database: Database) {
    this.pool = database.pool;
  }

  async create(tenantId: string, url: string, events: string[]) {
    const id = IdentityStore.newId('wh');
    const secret = newWebhookSecret();
    await withTenantTransaction(this.pool, tenantId, (c) => c.query(`INSERT INTO gateway.webhooks (id, tenant_id, url, secret, events) VALUES ($1, $2, $3, $4, $5)`, [id, tenantId, url, secret, events]));
    return { id, url, secret, events };
  }

  async list(tenantId: string) {
    const { rows } = await withTenantTransaction(this.pool, tenantId, (c) => c.query(`SELECT id, url, events, created_at FROM gateway.webhooks WHERE tenant_id = $1 ORDER BY created_at`, [tenantId]));
    return rows as Array<{ id: string; url: string; events: string[]; created_at: Date }>;
  }

  /** Endpoints subscribed to `eventType` (no events listed = all). */
  async subscribers(tenantId: string, eventType: string): Promise<Array<{ id: string }>> {
    const { rows } = await withTenantTransaction(this.pool, tenantId, (c) =>
      c.query(`SELECT id FROM gateway.webhooks WHERE tenant_id = $1 AND (cardinality(events) = 0 OR $2 = ANY(events))`, [tenantId, eventType]));
    return rows;
  }

  async endpoint(tenantId: string, id: string): Promise<{ url: string; secret: string } | undefined> {
    const { rows } = await withTenantTransaction(this.pool, tenantId, (c) => c.query(`SELECT url, secret FROM gateway.webhooks WHERE tenant_id = $1 AND id = $2`, [tenantId, id]));
    return rows[0];
  }

  async addDeadLetter(tenantId: string, letter: DeadLetter): Promise<void> {
    await withTenantTransaction(this.pool, tenantId, (c) =>
      c.query(
        `INSERT INTO gateway.webhook_dead_letters (id, tenant_id, webhook_id, event_id, event_type, payload, attempts, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
        [letter.id, tenantId, letter.webhookId, letter.eventId, letter.eventType, JSON.stringify(letter.payload), letter.attempts, letter.lastError.slice(0, 1000)],
      ));
  }

  async deadLetters(tenantId: string) {
    const { rows } = await withTenantTransaction(this.pool, tenantId, (c) =>
      c.query(`SELECT id, webhook_id, event_id, event_type, payload, attempts, last_error, replayed_at, created_at FROM gateway.webhook_dead_letters WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 100`, [tenantId]));
    return rows;
  }

  /** Marks a dead letter replayed and returns it; undefined when it is not this tenant's. */
  async takeForReplay(tenantId: string, id: string): Promise<DeadLetter | undefined> {
    const { rows } = await withTenantTransaction(this.pool, tenantId, (c) =>
      c.query(`UPDATE gateway.webhook_dead_letters SET replayed_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING id, webhook_id, event_id, event_type, payload, attempts, last_error`, [tenantId, id]));
    const row = rows[0];
    return row && { id: row.id, webhookId: row.webhook_id, eventId: row.event_id, eventType: row.event_type, payload: row.payload, attempts: row.attempts, lastError: row.last_error };
  }
}
