import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, LOGGER, withTenantTransaction, type Logger, type Pool } from '@ai-platform/platform';
import type { BillingConfig } from '../config';
import { CreditService } from '../credits/credit.service';
import { PG_POOL, STRIPE } from '../infra/tokens';
import { formatCredits } from '../ledger/money';
import { StripeCustomers } from './customers';
import { creditsToMinor, type StripeClient } from './stripe.client';

export class TopUpRejectedError extends Error {}

export interface OrderRow {
  id: string;
  tenant_id: string;
  kind: 'checkout' | 'auto_topup';
  credits_micros: string;
  amount_minor: string;
  currency: string;
  status: string;
}

/**
 * Credit top-ups: Checkout sessions bought by the tenant, and automatic top-ups
 * charged to the saved payment method when the balance falls below the
 * tenant's threshold. Each is an order row first (what we sell, for how much,
 * in which currency); Stripe's confirmation (webhook, or a PaymentIntent that
 * succeeded at once) credits the ledger once, by the Stripe object id, after
 * checking currency and amount against the order.
 */
@Injectable()
export class TopUps {
  constructor(
    @Inject(CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(STRIPE) private readonly stripe: StripeClient | undefined,
    @Inject(StripeCustomers) private readonly customers: StripeCustomers,
    @Inject(CreditService) private readonly credits: CreditService,
  ) {}

  private get client(): StripeClient {
    if (!this.stripe) throw new TopUpRejectedError('top-ups need Stripe, which is not configured on this deployment');
    return this.stripe;
  }

  async createCheckout(tenantId: string, creditsMicros: bigint, currency: string, successUrl: string, cancelUrl: string) {
    if (creditsMicros < 1_000_000n || creditsMicros > 1_000_000_000_000n) throw new TopUpRejectedError('credits must be between 1 and 1,000,000');
    const tenantCurrency = await this.currencyOf(tenantId);
    const wanted = (currency || tenantCurrency).toLowerCase();
    if (wanted !== tenantCurrency) throw new TopUpRejectedError(`currency mismatch: this tenant is billed in ${tenantCurrency.toUpperCase()}, not ${wanted.toUpperCase()}`);
    const amountMinor = creditsToMinor(creditsMicros);
    const order = await this.pool.query<{ id: string }>(
      `INSERT INTO billing.top_up_orders (tenant_id, kind, credits_micros, amount_minor, currency) VALUES ($1, 'checkout', $2, $3, $4) RETURNING id`,
      [tenantId, creditsMicros.toString(), amountMinor.toString(), wanted],
    );
    const orderId = order.rows[0]!.id;
    const session = await this.client.checkout.sessions.create(
      {
        mode: 'payment',
        customer: await this.customers.customerOf(tenantId),
        client_reference_id: orderId,
        metadata: { order_id: orderId, tenant_id: tenantId },
        success_url: successUrl || this.config.TOP_UP_SUCCESS_URL,
        cancel_url: cancelUrl || this.config.TOP_UP_CANCEL_URL,
        line_items: [{ quantity: 1, price_data: { currency: wanted, unit_amount: Number(amountMinor), product_data: { name: `${formatCredits(creditsMicros)}` } } }],
      },
      { idempotencyKey: `checkout:${orderId}` },
    );
    await this.pool.query(`UPDATE billing.top_up_orders SET stripe_id = $2, status = 'open', updated_at = now() WHERE id = $1`, [orderId, session.id]);
    return { orderId, sessionId: session.id, url: session.url ?? '', amountMinor, currency: wanted };
  }

  /**
   * Books a paid order once. Returns the outcome for the webhook record:
   * `applied`, `duplicate`, or `rejected: <reason>` (nothing moved).
   */
  async complete(stripeObjectId: string, orderId: string | undefined, paid: { currency?: string | null; amountMinor?: number | null }): Promise<string> {
    const { rows } = await this.pool.query<OrderRow>(`SELECT * FROM billing.top_up_orders WHERE id::text = $1 OR stripe_id = $2 LIMIT 1`, [orderId ?? '', stripeObjectId]);
    const order = rows[0];
    if (!order) return 'rejected: no top-up order matches this payment';
    const reject = async (reason: string) => {
      await this.pool.query(`UPDATE billing.top_up_orders SET status = 'rejected', reason = $2, updated_at = now() WHERE id = $1 AND status <> 'paid'`, [order.id, reason]);
      this.logger.warn({ order_id: order.id, reason }, 'top-up rejected');
      return `rejected: ${reason}`;
    };
    if ((paid.currency ?? '').toLowerCase() !== order.currency) return reject(`currency mismatch: order in ${order.currency}, paid in ${paid.currency ?? 'none'}`);
    if (paid.amountMinor != null && BigInt(paid.amountMinor) !== BigInt(order.amount_minor)) return reject(`amount mismatch: order ${order.amount_minor}, paid ${paid.amountMinor}`);
    const result = await withTenantTransaction(this.pool, order.tenant_id, async (client) => {
      const booked = await this.credits.postIn(client, {
        tenantId: order.tenant_id,
        kind: order.kind === 'checkout' ? 'purchase' : 'top_up',
        amountMicros: BigInt(order.credits_micros),
        reference: `stripe:${stripeObjectId}`,
        description: `${order.kind === 'checkout' ? 'credit purchase' : 'automatic top-up'} (order ${order.id})`,
      });
      await client.query(`UPDATE billing.top_up_orders SET status = 'paid', stripe_id = coalesce(stripe_id, $2), updated_at = now() WHERE id = $1`, [order.id, stripeObjectId]);
      return booked;
    });
    return result.duplicate ? 'duplicate' : 'applied';
  }

  async currencyOf(tenantId: string): Promise<string> {
    const { rows } = await withTenantTransaction(this.pool, tenantId, (client) =>
      client.query<{ currency: string }>(`SELECT currency FROM billing.accounts WHERE tenant_id = $1`, [tenantId]),
    );
    return rows[0]?.currency ?? 'usd';
  }
}
