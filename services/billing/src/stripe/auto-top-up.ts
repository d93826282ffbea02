import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, LOGGER, type Logger, PeriodicTask, type Pool } from '@ai-platform/platform';
import type { BillingConfig } from '../config';
import { PG_POOL, STRIPE } from '../infra/tokens';
import { StripeCustomers } from './customers';
import { creditsToMinor, type StripeClient } from './stripe.client';
import { TopUps } from './top-ups';

/**
 * Automatic top-up for paying tenants: every AUTO_TOPUP_INTERVAL_MS, each
 * tenant with a threshold, an amount and a saved payment method whose
 * balance is below the threshold gets one order (a partial unique index
 * allows one open auto top-up per tenant) and an off-session PaymentIntent
 * (idempotency key = order id, so a retry never charges twice). The ledger is
 * credited when the PaymentIntent succeeds: at once, or by the
 * `payment_intent.succeeded` webhook; both book by the PaymentIntent id, once.
 */
@Injectable()
export class AutoTopUp {
  private readonly task: PeriodicTask<number>;

  constructor(
    @Inject(CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(STRIPE) private readonly stripe: StripeClient | undefined,
    @Inject(StripeCustomers) private readonly customers: StripeCustomers,
    @Inject(TopUps) private readonly topUps: TopUps,
  ) {
    this.task = new PeriodicTask('auto top-up pass', () => this.pass(), logger, 0);
  }

  start(): void {
    if (this.stripe) this.task.start(this.config.AUTO_TOPUP_INTERVAL_MS);
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  runOnce(): Promise<number> {
    return this.task.runOnce();
  }

  private async pass(): Promise<number> {
    const { rows } = await this.pool.query<{ tenant_id: string; amount: string; currency: string; method: string }>(
      `SELECT a.tenant_id, a.auto_topup_amount_micros AS amount, a.currency, a.auto_topup_payment_method AS method
         FROM billing.accounts a
        WHERE a.kind = 'tenant' AND a.auto_topup_threshold_micros IS NOT NULL AND a.auto_topup_amount_micros IS NOT NULL AND a.auto_topup_payment_method IS NOT NULL
          AND a.balance_micros < a.auto_topup_threshold_micros
          AND NOT EXISTS (SELECT 1 FROM billing.top_up_orders o WHERE o.tenant_id = a.tenant_id AND o.kind = 'auto_topup' AND o.status IN ('pending', 'open'))
        LIMIT 100`,
    );
    let charged = 0;
    for (const row of rows) {
      const credits = BigInt(row.amount);
      const amountMinor = creditsToMinor(credits);
      const order = await this.pool.query<{ id: string }>(
        `INSERT INTO billing.top_up_orders (tenant_id, kind, credits_micros, amount_minor, currency) VALUES ($1, 'auto_topup', $2, $3, $4)
         ON CONFLICT DO NOTHING RETURNING id`,
        [row.tenant_id, credits.toString(), amountMinor.toString(), row.currency],
      );
      const orderId = order.rows[0]?.id;
      if (!orderId) continue;
      try {
        const intent = await this.stripe!.paymentIntents.create(
          {
            amount: Number(amountMinor), currency: row.currency, customer: await this.customers.customerOf(row.tenant_id),
            payment_method: row.method, off_session: true, confirm: true, metadata: { order_id: orderId, tenant_id: row.tenant_id, purpose: 'auto_topup' },
          },
          { idempotencyKey: `auto-topup:${orderId}` },
        );
        await this.pool.query(`UPDATE billing.top_up_orders SET stripe_id = $2, status = 'open', updated_at = now() WHERE id = $1`, [orderId, intent.id]);
        if (intent.status === 'succeeded') await this.topUps.complete(intent.id, orderId, { currency: intent.currency, amountMinor: intent.amount });
        charged += 1;
      } catch (error) {
        await this.pool.query(`UPDATE billing.top_up_orders SET status = 'failed', reason = $2, updated_at = now() WHERE id = $1`, [orderId, (error as Error).message.slice(0, 500)]);
        this.logger.warn({ tenant_id: row.tenant_id, err: error }, 'auto top-up charge failed');
      }
    }
    return charged;
  }
}
