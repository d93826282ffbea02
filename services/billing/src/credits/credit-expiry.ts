import { Inject, Injectable } from '@nestjs/common';
import { LOGGER, withTenantTransaction, type Logger, type Pool } from '@ai-platform/platform';
import { PG_POOL } from '../infra/tokens';
import { Ledger } from '../ledger/ledger';
import { toBigInt } from '../ledger/money';

/**
 * Lapses expiring credit. A grant with `expires_at` is a lot; usage after the
 * grant is drawn from it first, so at expiry what is left of it is
 *   min(lot − charges booked on the tenant since the grant, balance), at least 0,
 * which is booked tenant → expired_credit (`credit_expiry`, reference = the
 * grant's transaction id, so once). The rule favours the tenant when lots
 * overlap (both see the same charges) and never takes the balance below zero.
 */
@Injectable()
export class CreditExpiry {
  constructor(
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(Ledger) private readonly ledger: Ledger,
  ) {}

  async sweepOnce(): Promise<number> {
    const { rows } = await this.pool.query<{ transaction_id: string; tenant_id: string }>(`SELECT * FROM billing.due_credit_lots(200)`);
    let lapsed = 0;
    for (const row of rows) if (await this.expire(row.transaction_id, row.tenant_id)) lapsed += 1;
    if (lapsed) this.logger.info({ lapsed }, 'expired credit lots');
    return lapsed;
  }

  private expire(lotId: string, tenantId: string): Promise<boolean> {
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      const accountId = await this.ledger.lockTenantAccount(client, tenantId);
      const { rows } = await client.query<{ amount_micros: string; granted_at: Date }>(
        `SELECT amount_micros, granted_at FROM billing.credit_lots WHERE transaction_id = $1 AND expired_at IS NULL AND expires_at <= now() FOR UPDATE`,
        [lotId],
      );
      const lot = rows[0];
      if (!lot) return false;
      const figures = await client.query<{ spent: string; balance: string }>(
        `SELECT coalesce((SELECT -sum(amount_micros) FROM billing.ledger_entries WHERE account_id = $1 AND created_at >= $2 AND amount_micros < 0), 0) AS spent,
                (SELECT balance_micros FROM billing.accounts WHERE id = $1) AS balance`,
        [accountId, lot.granted_at],
      );
      const left = toBigInt(lot.amount_micros) - toBigInt(figures.rows[0]?.spent);
      const balance = toBigInt(figures.rows[0]?.balance);
      let lapse = left < balance ? left : balance;
      if (lapse < 0n) lapse = 0n;
      if (lapse > 0n) {
        await this.ledger.transfer(client, {
          tenantId, kind: 'credit_expiry', reference: lotId, description: 'unused granted credit expired',
          from: accountId, to: await this.ledger.systemAccountId(client, 'expired_credit'), amountMicros: lapse,
        });
      }
      await client.query(`UPDATE billing.credit_lots SET expired_at = now(), expired_micros = $2 WHERE transaction_id = $1`, [lotId, lapse.toString()]);
      return true;
    });
  }
}
