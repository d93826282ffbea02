import { Inject, Injectable } from '@nestjs/common';
import { withTenantTransaction, type Pool, type PoolClient } from '@ai-platform/platform';
import { PG_POOL } from '../infra/tokens';
import { Ledger, type LedgerKind, type SystemAccount } from '../ledger/ledger';
import { toBigInt } from '../ledger/money';

export type CreditKind = 'grant' | 'refund' | 'adjustment' | 'purchase' | 'top_up';

const SOURCE: Record<CreditKind, { kind: LedgerKind; account: SystemAccount }> = {
  grant: { kind: 'grant', account: 'grants' },
  refund: { kind: 'refund', account: 'revenue' },
  adjustment: { kind: 'manual_adjustment', account: 'adjustments' },
  purchase: { kind: 'purchase', account: 'purchases' },
  top_up: { kind: 'top_up', account: 'top_ups' },
};

export interface CreditInput {
  tenantId: string;
  kind: CreditKind;
  /** Positive adds credit; negative only for adjustments. */
  amountMicros: bigint;
  /** (kind, reference) is booked once. */
  reference: string;
  description?: string;
  /** Grants only: the credit lapses then (what is left of it, see CreditExpiry). */
  expiresAt?: Date;
}

export class CreditRejectedError extends Error {}

/** Grants, purchases, top-ups, refunds and adjustments: one balanced ledger transaction each, booked once per reference. */
@Injectable()
export class CreditService {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(Ledger) private readonly ledger: Ledger,
  ) {}

  async post(input: CreditInput): Promise<{ transactionId?: string; duplicate: boolean; balanceMicros: bigint }> {
    return withTenantTransaction(this.pool, input.tenantId, (client) => this.postIn(client, input));
  }

  async postIn(client: PoolClient, input: CreditInput): Promise<{ transactionId?: string; duplicate: boolean; balanceMicros: bigint }> {
    if (input.amountMicros === 0n) throw new CreditRejectedError('amount_micros must not be 0');
    if (input.amountMicros < 0n && input.kind !== 'adjustment') throw new CreditRejectedError(`a ${input.kind} adds credit: amount_micros must be positive`);
    if (input.expiresAt && input.kind !== 'grant') throw new CreditRejectedError('only grants can expire');
    if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) throw new CreditRejectedError('expires_at must be in the future');
    if (!input.reference || input.reference.length > 256) throw new CreditRejectedError('reference is required (at most 256 characters): it makes the credit idempotent');
    const { kind, account } = SOURCE[input.kind];
    const accountId = await this.ledger.lockTenantAccount(client, input.tenantId);
    const existing = await client.query<{ id: string }>(`SELECT id FROM billing.ledger_transactions WHERE kind = $1 AND reference = $2`, [kind, input.reference]);
    if (existing.rows[0]) return { transactionId: existing.rows[0].id, duplicate: true, balanceMicros: await this.balance(client, accountId) };
    const system = await this.ledger.systemAccountId(client, account);
    const positive = input.amountMicros > 0n;
    const transactionId = await this.ledger.transfer(client, {
      tenantId: input.tenantId,
      kind,
      reference: input.reference,
      description: input.description,
      from: positive ? system : accountId,
      to: positive ? accountId : system,
      amountMicros: positive ? input.amountMicros : -input.amountMicros,
    });
    if (input.expiresAt) {
      await client.query(`INSERT INTO billing.credit_lots (transaction_id, tenant_id, amount_micros, expires_at) VALUES ($1, $2, $3, $4)`, [
        transactionId, input.tenantId, input.amountMicros.toString(), input.expiresAt,
      ]);
    }
    return { transactionId, duplicate: false, balanceMicros: await this.balance(client, accountId) };
  }

  private async balance(client: PoolClient, accountId: string): Promise<bigint> {
    // The account row's balance is kept as exactly the sum of its entries, in this same transaction (migration 005).
    const { rows } = await client.query(`SELECT balance_micros AS b FROM billing.accounts WHERE id = $1`, [accountId]);
    return toBigInt(rows[0]?.b);
  }
}
