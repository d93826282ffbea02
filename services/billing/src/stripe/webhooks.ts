import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, LOGGER, type Logger, type Pool } from '@ai-platform/platform';
import type Stripe from 'stripe';
import type { BillingConfig } from '../config';
import { PG_POOL } from '../infra/tokens';
import { webhookVerifier } from './stripe.client';
import { TopUps } from './top-ups';

export class WebhookSignatureError extends Error {}

/**
 * Stripe webhooks, received by the gateway as raw bytes and forwarded here
 * unchanged. The `Stripe-Signature` header is verified on those bytes
 * (`stripe.webhooks.constructEvent`, 5-minute tolerance: a replay of an old
 * delivery fails). Each event id is handled once: it is recorded with its
 * outcome, and a redelivery answers `duplicate` without doing anything. The
 * money side is idempotent on its own too (ledger reference = Stripe object id).
 */
@Injectable()
export class StripeWebhooks {
  private readonly verifier = webhookVerifier();

  constructor(
    @Inject(CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(TopUps) private readonly topUps: TopUps,
  ) {}

  async handle(payload: Buffer, signature: string): Promise<{ eventId: string; type: string; duplicate: boolean; outcome: string }> {
    if (!this.config.STRIPE_WEBHOOK_SECRET) throw new WebhookSignatureError('Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)');
    let event: Stripe.Event;
    try {
      event = this.verifier.webhooks.constructEvent(payload, signature, this.config.STRIPE_WEBHOOK_SECRET, this.config.STRIPE_WEBHOOK_TOLERANCE_SECONDS);
    } catch (error) {
      throw new WebhookSignatureError(`Stripe-Signature verification failed: ${(error as Error).message}`);
    }
    const seen = await this.pool.query<{ outcome: string }>(`SELECT outcome FROM billing.stripe_events WHERE event_id = $1`, [event.id]);
    if (seen.rows[0]) return { eventId: event.id, type: event.type, duplicate: true, outcome: seen.rows[0].outcome };
    const outcome = await this.apply(event);
    const inserted = await this.pool.query(`INSERT INTO billing.stripe_events (event_id, type, outcome) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [event.id, event.type, outcome]);
    this.logger.info({ stripe_event: event.id, type: event.type, outcome }, 'stripe webhook handled');
    return { eventId: event.id, type: event.type, duplicate: inserted.rowCount === 0, outcome };
  }

  private async apply(event: Stripe.Event): Promise<string> {
    switch (event.type) {
      case 'checkout.session.completed': {
        const session = event.data.object;
        if (session.payment_status !== 'paid') return `ignored: payment_status ${session.payment_status}`;
        return this.topUps.complete(session.id, session.client_reference_id ?? session.metadata?.order_id, { currency: session.currency, amountMinor: session.amount_total });
      }
      case 'payment_intent.succeeded': {
        const intent = event.data.object;
        if (intent.metadata?.purpose !== 'auto_topup') return 'ignored: not an automatic top-up';
        return this.topUps.complete(intent.id, intent.metadata.order_id, { currency: intent.currency, amountMinor: intent.amount_received || intent.amount });
      }
      default:
        return 'ignored';
    }
  }
}
