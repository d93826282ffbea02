import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { Database, LOGGER, withTenantTransaction, withTransaction, type Logger, type Pool } from '@ai-platform/platform';
import { generateApiKey, hashSecret, parseApiKey, secretMatches } from './api-key';
import type { Principal } from './principal';

const LAST_USED_WRITE_INTERVAL_MS = 60_000;

/** Tenants, users and API keys in the gateway's schema. */
@Injectable()
export class IdentityStore {
  private readonly pool: Pool;
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(
    @Inject(Database) database: Database,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.pool = database.pool;
  }

  /** Resolves a presented key to its principal; undefined for unknown, wrong, revoked or expired keys. */
  async authenticate(presented: string): Promise<Principal | undefined> {
    const parsed = parseApiKey(presented);
    if (!parsed) return undefined;
    const row = await withTransaction(this.pool, async (client) => {
      await client.query(`SELECT set_config('app.key_lookup', 'on', true)`);
      const { rows } = await client.query(
        `SELECT tenant_id, user_id, secret_hash, scopes FROM gateway.api_keys
          WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
        [parsed.id],
      );
      return rows[0];
    });
    // Compare even when the key id is unknown so timing does not reveal which ids exist.
    const matches = secretMatches(parsed.secret, row?.secret_hash ?? Buffer.alloc(32));
    if (!row || !matches) return undefined;
    this.touch(parsed.id, row.tenant_id);
    return { tenantId: row.tenant_id, userId: row.user_id, apiKeyId: parsed.id, scopes: row.scopes };
  }

  async ensureTenant(id: string, name: string): Promise<void> {
    await this.pool.query(`INSERT INTO gateway.tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, [id, name]);
  }

  async ensureUser(tenantId: string, id: string, email: string): Promise<void> {
    await withTenantTransaction(this.pool, tenantId, (client) =>
      client.query(`INSERT INTO gateway.users (id, tenant_id, email) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`, [id, tenantId, email]),
    );
  }

  /** Creates a key and returns it in full; this is the only time the secret exists outside the caller. */
  async createKey(tenantId: string, userId: string, options: { name?: string; scopes?: string[]; expiresAt?: Date } = {}): Promise<{ id: string; key: string }> {
    const { id, secret, key } = generateApiKey();
    await withTenantTransaction(this.pool, tenantId, (client) =>
      client.query(
        `INSERT INTO gateway.api_keys (id, tenant_id, user_id, name, secret_hash, scopes, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [id, tenantId, userId, options.name ?? '', hashSecret(secret), options.scopes ?? [], options.expiresAt ?? null],
      ),
    );
    return { id, key };
  }

  async revokeKey(tenantId: string, keyId: string): Promise<boolean> {
    const result = await withTenantTransaction(this.pool, tenantId, (client) =>
      client.query(`UPDATE gateway.api_keys SET revoked_at = now() WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL`, [keyId, tenantId]),
    );
    return (result.rowCount ?? 0) > 0;
  }

  static newId(prefix: string): string {
    return `${prefix}_${randomUUID().replaceAll('-', '')}`;
  }

  /** Records last use at most once a minute per key, off the request path. */
  private touch(keyId: string, tenantId: string): void {
    const now = Date.now();
    if (now - (this.lastUsedWritten.get(keyId) ?? 0) < LAST_USED_WRITE_INTERVAL_MS) return;
    this.lastUsedWritten.set(keyId, now);
    void withTenantTransaction(this.pool, tenantId, (client) =>
      client.query(`UPDATE gateway.api_keys SET last_used_at = now() WHERE id = $1`, [keyId]),
    ).catch((error) => this.logger.warn({ err: error }, 'could not record key use'));
  }
}
