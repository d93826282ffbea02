import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, type PoolClient } from '@ai-platform/platform';
import type { BillingConfig } from '../config';
import { creditsToMicros, toBigInt } from './money';

export type LedgerKind =
  | 'signup_grant' | 'grant' | 'purchase' | 'top_up' | 'usage' | 'reservation_expiry' | 'expiry_adjustment'
  | 'refund' | 'manual_adjustment' | 'credit_expiry';
export type SystemAccount = 'grants' | 'revenue' | 'top_ups' | 'purchases' | 'adjustments' | 'expired_credit';

/** The tenant's account row, read under its lock. */
export interface TenantAccount {
  id: string;
  markupBps: number;
  hasBudgets: boolean;
  currency: string;
}

export interface LedgerEntryInput {
  accountId: string;
  amountMicros: bigint;
}

export interface LedgerTransactionInput {
  tenantId: string;
  kind: LedgerKind;
  /** Business key of the fact being booked; (kind, reference) is booked once. */
  reference: string;
  description?: string;
  entries: LedgerEntryInput[];
}

export interface TenantPosition {
  /** Sum of the tenant account's ledger entries. */
  balanceMicros: bigint;
  /** Sum of the tenant's open holds. */
  heldMicros: bigint;
}

/**
 * The double-entry credit ledger. Every method runs in the caller's
 * transaction (`client`), which must have `app.tenant_id` set to the tenant
 * concerned (row-level security). Balances are sums of entries; the database
 * checks at commit that each transaction's entries sum to zero.
 */
@Injectable()
export class Ledger {
  private readonly systemAccounts = new Map<SystemAccount, string>();

  constructor(@Inject(CONFIG) private readonly config: BillingConfig) {}

  async systemAccountId(client: PoolClient, code: SystemAccount): Promise<string> {
    const cached = this.systemAccounts.get(code);
    if (cached) return cached;
    const { rows } = await client.query<{ id: string }>(`SELECT id FROM billing.accounts WHERE kind = 'system' AND system_code = $1`, [code]);
    if (!rows[0]) throw new Error(`system account ${code} is missing; were the billing migrations applied?`);
    this.systemAccounts.set(code, rows[0].id);
    return rows[0].id;
  }

  /**
   * Locks the tenant's account row for the rest of the transaction, creating
   * the account with its sign-up grant the first time the tenant is seen.
   * Every change to a tenant's balance or open holds takes this lock first, so
   * they are serialised per tenant. Returns the account id.
   */
  async lockTenantAccount(client: PoolClient, tenantId: string): Promise<string> {
    return (await this.lockTenant(client, tenantId)).id;
  }

  /** lockTenantAccount, with the tenant's billing settings read under the same lock. */
  async lockTenant(client: PoolClient, tenantId: string): Promise<TenantAccount> {
    const existing = await this.selectForUpdate(client, tenantId);
    if (existing) return existing;
    const inserted = await client.query<{ id: string }>(
      `INSERT INTO billing.accounts (kind, tenant_id) VALUES ('tenant', $1) ON CONFLICT (tenant_id) DO NOTHING RETURNING id`,
      [tenantId],
    );
    const created = inserted.rows[0]?.id;
    if (created) {
      const grant = creditsToMicros(this.config.SIGNUP_GRANT_CREDITS);
      if (grant > 0n) {
        await this.transfer(client, {
          tenantId,
          kind: 'signup_grant',
          reference: tenantId,
          description: `sign-up grant of ${this.config.SIGNUP_GRANT_CREDITS} credits`,
          from: await this.systemAccountId(client, 'grants'),
          to: created,
          amountMicros: grant,
        });
      }
      return { id: created, markupBps: 0, hasBudgets: false, currency: 'usd' }; // the inserted row is ours until commit
    }
    // Another transaction created it concurrently and has committed by now.
    const raced = await this.selectForUpdate(client, tenantId);
    if (!raced) throw new Error(`account of tenant ${tenantId} vanished`);
    return raced;
  }

  /**
   * lockTenant for many tenants without an account yet, in a constant number of
   * statements: accounts inserted in tenant order, each new one with its sign-up
   * grant (same transaction kind, reference and amounts as lockTenant), then all
   * of them locked. Accounts another transaction created meanwhile are locked as
   * they are (no second grant: the insert skipped them).
   */
  async lockNewTenants(client: PoolClient, tenantIds: string[]): Promise<Map<string, TenantAccount>> {
    const sorted = [...new Set(tenantIds)].sort();
    const { rows: created } = await client.query<{ id: string; tenant_id: string }>(
      `INSERT INTO billing.accounts (kind, tenant_id) SELECT 'tenant', t FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n
       ON CONFLICT (tenant_id) DO NOTHING RETURNING id, tenant_id`,
      [sorted],
    );
    const grant = creditsToMicros(this.config.SIGNUP_GRANT_CREDITS);
    if (created.length && grant > 0n) {
      const from = await this.systemAccountId(client, 'grants');
      const { rows: txns } = await client.query<{ id: string; tenant_id: string }>(
        `INSERT INTO billing.ledger_transactions (tenant_id, kind, reference, description)
         SELECT t, 'signup_grant', t, $2 FROM unnest($1::text[]) AS u(t) RETURNING id, tenant_id`,
        [created.map((row) => row.tenant_id), `sign-up grant of ${this.config.SIGNUP_GRANT_CREDITS} credits`],
      );
      const accountOf = new Map(created.map((row) => [row.tenant_id, row.id]));
      await client.query(
        `INSERT INTO billing.ledger_entries (transaction_id, tenant_id, account_id, amount_micros)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[])`,
        [
          [...txns.map((t) => t.id), ...txns.map((t) => t.id)], [...txns.map((t) => t.tenant_id), ...txns.map((t) => t.tenant_id)],
          [...txns.map(() => from), ...txns.map((t) => accountOf.get(t.tenant_id)!)], [...txns.map(() => (-grant).toString()), ...txns.map(() => grant.toString())],
        ],
      );
    }
    const { rows } = await client.query<{ id: string; tenant_id: string; markup_bps: number; has_budgets: boolean; currency: string }>(
      `SELECT id, tenant_id, markup_bps, has_budgets, currency FROM billing.accounts WHERE tenant_id = ANY($1::text[]) ORDER BY tenant_id FOR UPDATE`,
      [sorted],
    );
    return new Map(rows.map((row) => [row.tenant_id, { id: row.id, markupBps: row.markup_bps, hasBudgets: row.has_budgets, currency: row.currency }]));
  }

  /**
   * Balance and open holds, read from the account row: the database keeps
   * balance_micros equal to the sum of its entries (migration 005) and
   * held_micros equal to the sum of its held reservations (migration 010), so
   * this grows neither with the history nor with the requests in flight.
   */
  async position(client: PoolClient, tenantId: string, accountId: string): Promise<TenantPosition> {
    const { rows } = await client.query<{ balance: string; held: string }>(
      `SELECT balance_micros AS balance, held_micros AS held FROM billing.accounts WHERE id = $1 AND tenant_id = $2`,
      [accountId, tenantId],
    );
    return { balanceMicros: toBigInt(rows[0]?.balance), heldMicros: toBigInt(rows[0]?.held) };
  }

  /** Books a balanced transaction; returns its id. */
  async post(client: PoolClient, transaction: LedgerTransactionInput): Promise<string> {
    const { entries } = transaction;
    if (entries.length < 2) throw new Error('a ledger transaction needs at least two entries');
    if (entries.some((entry) => entry.amountMicros === 0n)) throw new Error('ledger entries cannot be zero');
    if (entries.reduce((sum, entry) => sum + entry.amountMicros, 0n) !== 0n) throw new Error('ledger entries must sum to zero');
    const { rows } = await client.query<{ id: string }>(
      `INSERT INTO billing.ledger_transactions (tenant_id, kind, reference, description) VALUES ($1, $2, $3, $4) RETURNING id`,
      [transaction.tenantId, transaction.kind, transaction.reference, transaction.description ?? null],
    );
    const transactionId = rows[0]!.id;
    await client.query(
      `INSERT INTO billing.ledger_entries (transaction_id, tenant_id, account_id, amount_micros)
       SELECT $1, $2, account_id, amount FROM unnest($3::uuid[], $4::bigint[]) AS e(account_id, amount)`,
      [transactionId, transaction.tenantId, entries.map((entry) => entry.accountId), entries.map((entry) => entry.amountMicros.toString())],
    );
    return transactionId;
  }

  /** Moves a positive amount from one account to another. */
  async transfer(
    client: PoolClient,
    transfer: Omit<LedgerTransactionInput, 'entries'> & { from: string; to: string; amountMicros: bigint },
  ): Promise<string> {
    if (transfer.amountMicros <= 0n) throw new Error('a transfer moves a positive amount');
    const { from, to, amountMicros, ...transaction } = transfer;
    return this.post(client, {
      ...transaction,
      entries: [
        { accountId: from, amountMicros: -amountMicros },
        { accountId: to, amountMicros },
      ],
    });
  }

  private async selectForUpdate(client: PoolClient, tenantId: string): Promise<TenantAccount | undefined> {
    const { rows } = await client.query<{ id: string; markup_bps: number; has_budgets: boolean; currency: string }>(
      `SELECT id, markup_bps, has_budgets, currency FROM billing.accounts WHERE tenant_id = $1 FOR UPDATE`,
      [tenantId],
    );
    const row = rows[0];
    return row && { id: row.id, markupBps: row.markup_bps, hasBudgets: row.has_budgets, currency: row.currency };
  }
}
