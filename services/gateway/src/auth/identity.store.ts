import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { Database, LOGGER, withTenantTransaction, type Logger, type Pool } from '@ai-platform/platform';
import { generateApiKey, hashSecret, parseApiKey, secretMatches } from './api-key';

/** A key's owner as stored; the authenticator turns it into a Principal. */
export interface KeyOwner {
  tenantId: string;
  userId: string;
  apiKeyId: string;
  scopes: string[];
  tierName: string;
  limits: unknown;
}

export interface TenantRow {
  id: string;
  name: string;
  tier: string;
  limits: unknown;
}

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
  async authenticate(presented: string): Promise<KeyOwner | undefined> {
    const parsed = parseApiKey(presented);
    if (!parsed || !/^[A-Za-z0-9]{12,32}$/.test(parsed.id)) return undefined;
    // One round trip: a multi-statement simple query runs as one implicit transaction, so the
    // transaction-local key_lookup setting (the RLS bypass for this look-up) holds for the SELECT
    // and ends with it. Inlining the id is safe: parseApiKey admits only [A-Za-z0-9]{12,32}.
    const results = (await this.pool.query(
      `SELECT set_config('app.key_lookup', 'on', true);
       SELECT k.tenant_id, k.user_id, k.secret_hash, k.scopes, t.tier, t.limits
         FROM gateway.api_keys k JOIN gateway.tenants t ON t.id = k.tenant_id
        WHERE k.id = '${parsed.id}' AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())`,
    )) as unknown as Array<{ rows: Array<{ tenant_id: string; user_id: string; secret_hash: Buffer; scopes: string[]; tier: string; limits: unknown }> }>;
    const row = results[1]?.rows[0];
    // Compare even when the key id is unknown so timing does not reveal which ids exist.
    const matches = secretMatches(parsed.secret, row?.secret_hash ?? Buffer.alloc(32));
    if (!row || !matches) return undefined;
    this.touch(parsed.id, row.tenant_id);
    return { tenantId: row.tenant_id, userId: row.user_id, apiKeyId: parsed.id, scopes: row.scopes, tierName: row.tier, limits: row.limits };
  }

  async tenant(id: string): Promise<TenantRow | undefined> {
    const { rows } = await this.pool.query(`SELECT id, name, tier, limits FROM gateway.tenants WHERE id = $1`, [id]);
    return rows[0];
  }

  /** Creates a tenant; false when the id is taken. */
  async createTenant(id: string, name: string, tier: string, limits: unknown): Promise<boolean> {
    const result = await this.pool.query(
      `INSERT INTO gateway.tenants (id, name, tier, limits) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`,
      [id, name, tier, limits == null ? null : JSON.stringify(limits)],
    );
    return (result.rowCount ?? 0) > 0;
  }

  async updateTenantLimits(id: string, tier: string | undefined, limits: unknown): Promise<boolean> {
    const result = await this.pool.query(
      `UPDATE gateway.tenants SET tier = COALESCE($2, tier), limits = $3 WHERE id = $1`,
      [id, tier ?? null, limits == null ? null : JSON.stringify(limits)],
    );
    return (result.rowCount ?? 0) > 0;
  }

  /** Creates a user in the tenant; false when the id is taken. */
  async createUser(tenantId: string, id: string, email: string | null): Promise<boolean> {
    const result = await withTenantTransaction(this.pool, tenantId, (client) =>
      client.query(`INSERT INTO gateway.users (id, tenant_id, email) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [id, tenantId, email]),
    );
    return (result.rowCount ?? 0) > 0;
  }

  async userExists(tenantId: string, userId: string): Promise<boolean> {
    const { rows } = await withTenantTransaction(this.pool, tenantId, (client) =>
      client.query(`SELECT 1 FROM gateway.users WHERE id = $1 AND tenant_id = $2`, [userId, tenantId]),
    );
    return rows.length > 0;
  }

  async listKeys(tenantId: string) {
    const { rows } = await withTenantTransaction(this.pool, tenantId, (client) =>
      client.query(
        `SELECT id, user_id, name, scopes, expires_at, revoked_at, last_used_at, created_at FROM gateway.api_keys WHERE tenant_id = $1 ORDER BY created_at`,
        [tenantId],
      ),
    );
    return rows;
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
