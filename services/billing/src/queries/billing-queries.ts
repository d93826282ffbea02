import { Inject, Injectable } from '@nestjs/common';
import { withTenantTransaction, withTransaction, type Pool } from '@ai-platform/platform';
import { PG_POOL } from '../infra/tokens';
import { toBigInt } from '../ledger/money';

const GROUPS = { day: `to_char(date_trunc('day', occurred_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')`, model: 'model', user: 'user_id', key: 'api_key_id' } as const;
export type UsageGrouping = keyof typeof GROUPS;
export const isGrouping = (value: string): value is UsageGrouping => value in GROUPS;

const monthStart = (now = new Date()) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
const monthEnd = (now = new Date()) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));

/**
 * Read side for the caller and for operators. A tenant's balance is its
 * account row's `balance_micros`, which the database keeps as exactly the sum
 * of the account's entries (migration 005), so every figure matches the
 * ledger to the micro without reading the account's whole history; the rest
 * is computed from the entries or usage records in the range asked for.
 */
@Injectable()
export class BillingQueries {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  balance(tenantId: string) {
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      const { rows } = await client.query(
        `SELECT a.balance_micros AS balance, a.held_micros AS held, a.currency,
                (SELECT coalesce(sum(amount_micros), 0) FROM billing.credit_lots WHERE tenant_id = $1 AND expired_at IS NULL) AS expiring,
                (SELECT min(expires_at) FROM billing.credit_lots WHERE tenant_id = $1 AND expired_at IS NULL) AS next_expiry
           FROM (SELECT 1) one LEFT JOIN billing.accounts a ON a.tenant_id = $1 AND a.kind = 'tenant'`,
        [tenantId],
      );
      const row = rows[0];
      const balance = toBigInt(row.balance);
      const held = toBigInt(row.held);
      return { balanceMicros: balance, heldMicros: held, availableMicros: balance - held, currency: row.currency ?? 'usd', expiringMicros: toBigInt(row.expiring), nextExpiry: row.next_expiry as Date | null };
    });
  }

  holds(tenantId: string, limit: number) {
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      const { rows } = await client.query(
        `SELECT id, user_id, api_key_id, request_id, model, amount_micros, created_at, expires_at
           FROM billing.reservations WHERE tenant_id = $1 AND status = 'held' ORDER BY created_at DESC LIMIT $2`,
        [tenantId, limit],
      );
      const total = await client.query(`SELECT held_micros AS t FROM billing.accounts WHERE tenant_id = $1 AND kind = 'tenant'`, [tenantId]);
      return { holds: rows, totalMicros: toBigInt(total.rows[0]?.t) };
    });
  }

  ledger(tenantId: string, limit: number, before?: string) {
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      const cursor = before ? Number(before) : null;
      const account = await client.query(`SELECT id, balance_micros FROM billing.accounts WHERE tenant_id = $1 AND kind = 'tenant'`, [tenantId]);
      const accountId = account.rows[0]?.id ?? null;
      // Newest first by (created_at, id): one backward range scan of the account's
      // entries. The cursor is the last entry id of the previous page.
      const { rows } = await client.query(
        `SELECT e.id AS entry_id, t.id, t.kind, t.reference, coalesce(t.description, '') AS description, e.amount_micros, e.created_at
           FROM billing.ledger_entries e JOIN billing.ledger_transactions t ON t.id = e.transaction_id
          WHERE e.account_id = $1
            AND ($3::bigint IS NULL OR (e.created_at, e.id) < (SELECT c.created_at, c.id FROM billing.ledger_entries c WHERE c.id = $3 AND c.account_id = $1))
          ORDER BY e.created_at DESC, e.id DESC LIMIT $2`,
        [accountId, limit, Number.isSafeInteger(cursor) ? cursor : null],
      );
      return { rows, balanceMicros: toBigInt(account.rows[0]?.balance_micros), nextCursor: rows.length === limit ? String(rows.at(-1).entry_id) : '' };
    });
  }

  usage(tenantId: string, groupBy: UsageGrouping[], from?: Date, to?: Date) {
    const columns = groupBy.map((name) => `${GROUPS[name]} AS ${name}`);
    const keys = groupBy.map((_, index) => String(index + 1));
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      const { rows } = await client.query(
        `SELECT ${[...columns, 'count(*) AS requests', 'sum(input_tokens) AS input_tokens', 'sum(cached_input_tokens) AS cached_input_tokens', 'sum(output_tokens) AS output_tokens', 'sum(embedding_tokens) AS embedding_tokens', 'sum(cost_micros) AS cost_micros'].join(', ')}
           FROM billing.usage_records
          WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR occurred_at >= $2) AND ($3::timestamptz IS NULL OR occurred_at < $3)
          ${keys.length ? `GROUP BY ${keys.join(', ')} ORDER BY ${keys.join(', ')}` : ''}`,
        [tenantId, from ?? null, to ?? null],
      );
      return rows;
    });
  }

  invoicePreview(tenantId: string) {
    const start = monthStart();
    const end = monthEnd();
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      // The account's id first, so the planner sees it: the month is then a range scan of its index.
      const account = await client.query(`SELECT id FROM billing.accounts WHERE tenant_id = $1 AND kind = 'tenant'`, [tenantId]);
      // One statement, so the lines and the balance come from one snapshot: the
      // opening balance is the current balance less everything booked since the
      // period began (entries are append-only, and none is dated after now).
      const { rows } = await client.query(
        `SELECT a.balance_micros AS balance, a.currency,
                (SELECT coalesce(sum(e.amount_micros), 0) FROM billing.ledger_entries e WHERE e.account_id = $1 AND e.created_at >= $2) AS since_start,
                (SELECT coalesce(json_agg(l ORDER BY l.kind), '[]') FROM (
                   SELECT t.kind, count(*) AS n, sum(e.amount_micros)::text AS amount
                     FROM billing.ledger_entries e JOIN billing.ledger_transactions t ON t.id = e.transaction_id
                    WHERE e.account_id = $1 AND e.created_at >= $2 AND e.created_at < $3 GROUP BY t.kind) l) AS lines
           FROM billing.accounts a WHERE a.id = $1`,
        [account.rows[0]?.id ?? null, start, end],
      );
      const row = rows[0] ?? {};
      const lines = (row.lines as { kind: string; n: number; amount: string }[] ?? []).map((line) => ({ kind: line.kind, count: BigInt(line.n), amountMicros: BigInt(line.amount) }));
      const openingBalance = toBigInt(row.balance) - toBigInt(row.since_start);
      const charges = ['usage', 'reservation_expiry', 'expiry_adjustment'];
      const usage = -lines.filter((line) => charges.includes(line.kind)).reduce((sum, line) => sum + line.amountMicros, 0n);
      const credits = lines.filter((line) => !charges.includes(line.kind)).reduce((sum, line) => sum + line.amountMicros, 0n);
      return { start, end, lines, usageMicros: usage, creditsMicros: credits, openingBalanceMicros: openingBalance, closingBalanceMicros: openingBalance + credits - usage, currency: row.currency ?? 'usd' };
    });
  }

  /** Operators: usage per tenant over a range, with each tenant's balance. Cross-tenant: runs as the service (no tenant scope). */
  costReport(from: Date | undefined, to: Date | undefined, limit: number) {
    return withTransaction(this.pool, async (client) => {
      const { rows } = await client.query(
        `SELECT u.tenant_id, count(*) AS requests, sum(u.input_tokens) AS input_tokens, sum(u.output_tokens) AS output_tokens, sum(u.cost_micros) AS usage,
                coalesce((SELECT a.balance_micros FROM billing.accounts a WHERE a.tenant_id = u.tenant_id AND a.kind = 'tenant'), 0) AS balance
           FROM billing.usage_records u
          WHERE ($1::timestamptz IS NULL OR u.occurred_at >= $1) AND ($2::timestamptz IS NULL OR u.occurred_at < $2)
          GROUP BY u.tenant_id ORDER BY usage DESC LIMIT $3`,
        [from ?? null, to ?? null, limit],
      );
      return rows;
    });
  }
}
