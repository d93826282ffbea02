import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, LOGGER, type Logger, PeriodicTask, type Pool, type PoolClient, withTransaction } from '@ai-platform/platform';
import type { BillingConfig } from '../config';
import { PG_POOL, STRIPE } from '../infra/tokens';
import { StripeCustomers } from './customers';
import type { StripeClient } from './stripe.client';

/**
 * Usage to Stripe as Billing Meter events, batched and never double-reported:
 * 1. settlement adds each consumer batch's usage per tenant to `meter_pending`
 *    (same transaction as the ledger);
 * 2. a pass moves all pending rows into one `meter_reports` row per tenant
 *    (one transaction: delete + insert); the row id is the meter event's
 *    `identifier`, fixed before the first attempt;
 * 3. each pending report is sent; a failure (Stripe down) leaves it pending
 *    with a backoff; a retry sends the same identifier, which Stripe dedupes.
 */
@Injectable()
export class MeterReporter {
  private readonly task: PeriodicTask<number>;

  constructor(
    @Inject(CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(STRIPE) private readonly stripe: StripeClient | undefined,
    @Inject(StripeCustomers) private readonly customers: StripeCustomers,
  ) {
    this.task = new PeriodicTask('meter report pass', () => this.pass(), logger, 0);
  }

  /** Called by settlement in its transaction. */
  static async addPending(client: PoolClient, rows: Array<{ tenantId: string; micros: bigint }>): Promise<void> {
    const nonZero = rows.filter((row) => row.micros !== 0n);
    if (nonZero.length === 0) return;
    await client.query({
      name: 'billing.meter.add_pending',
      text: `INSERT INTO billing.meter_pending (tenant_id, value_micros) SELECT * FROM unnest($1::text[], $2::bigint[])`,
      values: [nonZero.map((row) => row.tenantId), nonZero.map((row) => row.micros.toString())],
    });
  }

  start(): void {
    if (this.stripe) this.task.start(this.config.METER_REPORT_INTERVAL_MS);
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  /** One pass: batch what is pending, then send what is due. Returns how many reports were sent. */
  runOnce(): Promise<number> {
    return this.task.runOnce();
  }

  private async pass(): Promise<number> {
    await withTransaction(this.pool, async (client) => {
      const { rows } = await client.query<{ tenant_id: string; total: string }>(
        `WITH taken AS (DELETE FROM billing.meter_pending RETURNING tenant_id, value_micros)
         SELECT tenant_id, sum(value_micros)::text AS total FROM taken GROUP BY tenant_id`,
      );
      const due = rows.filter((row) => row.total !== '0');
      if (due.length) {
        await client.query(`INSERT INTO billing.meter_reports (id, tenant_id, value_micros) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])`, [
          due.map(() => `mr_${randomUUID()}`), due.map((row) => row.tenant_id), due.map((row) => row.total),
        ]);
      }
    });
    const { rows } = await this.pool.query<{ id: string; tenant_id: string; value_micros: string }>(
      `SELECT id, tenant_id, value_micros FROM billing.meter_reports WHERE status = 'pending' AND next_attempt_at <= now() ORDER BY created_at LIMIT 500`,
    );
    let sent = 0;
    for (const report of rows) {
      try {
        const customer = await this.customers.customerOf(report.tenant_id);
        await this.stripe!.billing.meterEvents.create(
          { event_name: this.config.STRIPE_METER_EVENT_NAME, identifier: report.id, payload: { value: report.value_micros, stripe_customer_id: customer } },
          { idempotencyKey: report.id },
        );
        await this.pool.query(`UPDATE billing.meter_reports SET status = 'sent', sent_at = now(), attempts = attempts + 1 WHERE id = $1`, [report.id]);
        sent += 1;
      } catch (error) {
        await this.pool.query(
          `UPDATE billing.meter_reports SET attempts = attempts + 1, last_error = $2, next_attempt_at = now() + make_interval(secs => least(60, 0.5 * 2 ^ least(attempts, 7))) WHERE id = $1`,
          [report.id, (error as Error).message.slice(0, 500)],
        );
        this.logger.warn({ report_id: report.id, err: error }, 'meter event not accepted by Stripe; will retry with the same identifier');
        break; // Stripe is likely down: stop this pass, keep order.
      }
    }
    return sent;
  }
}
