import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, LOGGER, withTenantTransaction, type Logger, type Pool } from '@ai-platform/platform';
import type { BillingConfig } from '../config';
import { PG_POOL } from '../infra/tokens';
import { BudgetService } from '../budgets/budget.service';
import { Ledger } from '../ledger/ledger';
import { toBigInt } from '../ledger/money';

const BATCH = 200;

/**
 * Settles holds whose usage event never arrived: at `expires_at` the full
 * held amount is charged (tenant → revenue, kind `reservation_expiry`) and the
 * reservation becomes `expired`. A usage event that still arrives later
 * corrects the charge to the actual cost (see UsageSettlement).
 * Runs at start and every EXPIRY_SWEEP_INTERVAL_SECONDS; replicas may run it
 * concurrently: each reservation is re-checked under its row lock.
 */
@Injectable()
export class ExpirySweeper {
  private timer?: NodeJS.Timeout;
  private stopped = true;
  private shuttingDown = false;
  private running?: Promise<number>;

  constructor(
    @Inject(CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(Ledger) private readonly ledger: Ledger,
    @Inject(BudgetService) private readonly budgets: BudgetService,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.shuttingDown = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** Expires every due reservation now; returns how many it expired. One pass at a time. */
  async sweepOnce(): Promise<number> {
    this.running ??= this.sweep().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.sweepOnce()
        .catch((error) => this.logger.error({ err: error }, 'reservation expiry sweep failed; retrying next interval'))
        .finally(() => {
          if (!this.stopped) this.schedule(this.config.EXPIRY_SWEEP_INTERVAL_SECONDS * 1000);
        });
    }, delayMs);
    this.timer.unref();
  }

  private async sweep(): Promise<number> {
    let expired = 0;
    for (;;) {
      const { rows } = await this.pool.query<{ id: string; tenant_id: string }>(`SELECT id, tenant_id FROM billing.due_reservations($1)`, [BATCH]);
      let progressed = 0;
      for (const row of rows) {
        if (this.shuttingDown) return expired + progressed;
        if (await this.expire(row.id, row.tenant_id)) progressed += 1;
      }
      expired += progressed;
      // Stop when the batch was not full, or when another replica took everything in it.
      if (rows.length < BATCH || progressed === 0) break;
    }
    if (expired > 0) this.logger.info({ expired }, 'expired reservations settled at their full hold');
    return expired;
  }

  private async expire(reservationId: string, tenantId: string): Promise<boolean> {
    const expired = await withTenantTransaction(this.pool, tenantId, async (client) => {
      const account = await this.ledger.lockTenant(client, tenantId);
      const accountId = account.id;
      const { rows } = await client.query<{ amount_micros: string; user_id: string; api_key_id: string }>(
        `SELECT amount_micros, user_id, api_key_id FROM billing.reservations
          WHERE id = $1 AND tenant_id = $2 AND status = 'held' AND expires_at <= now()
          FOR UPDATE`,
        [reservationId, tenantId],
      );
      if (!rows[0]) return false; // settled, released or expired meanwhile
      const amount = toBigInt(rows[0].amount_micros);
      if (amount > 0n) {
        await this.ledger.transfer(client, {
          tenantId,
          kind: 'reservation_expiry',
          reference: reservationId,
          description: 'no usage event before the reservation expired: full hold charged',
          from: accountId,
          to: await this.ledger.systemAccountId(client, 'revenue'),
          amountMicros: amount,
        });
        if (account.hasBudgets) await this.budgets.recordSpend(client, tenantId, [{ userId: rows[0].user_id, apiKeyId: rows[0].api_key_id, micros: amount }]);
      }
      await client.query(
        `UPDATE billing.reservations SET status = 'expired', settled_micros = amount_micros, closed_at = now(), updated_at = now() WHERE id = $1`,
        [reservationId],
      );
      return true;
    });
    await this.budgets.afterCommit();
    return expired;
  }
}
