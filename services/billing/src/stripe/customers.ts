import { Inject, Injectable } from '@nestjs/common';
import { withTenantTransaction, type Pool } from '@ai-platform/platform';
import { PG_POOL, STRIPE } from '../infra/tokens';
import type { StripeClient } from './stripe.client';

/** One Stripe customer per tenant, created on first need (idempotency key = tenant) and stored on the account row. */
@Injectable()
export class StripeCustomers {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(STRIPE) private readonly stripe: StripeClient | undefined,
  ) {}

  async customerOf(tenantId: string): Promise<string> {
    if (!this.stripe) throw new Error('Stripe is not configured (STRIPE_SECRET_KEY)');
    const { rows } = await withTenantTransaction(this.pool, tenantId, (client) =>
      client.query<{ stripe_customer_id: string | null }>(`SELECT stripe_customer_id FROM billing.accounts WHERE tenant_id = $1`, [tenantId]),
    );
    if (rows[0]?.stripe_customer_id) return rows[0].stripe_customer_id;
    const customer = await this.stripe.customers.create({ metadata: { tenant_id: tenantId } }, { idempotencyKey: `customer:${tenantId}` });
    await withTenantTransaction(this.pool, tenantId, (client) =>
      client.query(`UPDATE billing.accounts SET stripe_customer_id = coalesce(stripe_customer_id, $2) WHERE tenant_id = $1`, [tenantId, customer.id]),
    );
    return customer.id;
  }
}
