import Stripe from 'stripe';
import type { BillingConfig } from '../config';

export type StripeClient = Stripe;

/**
 * The Stripe SDK pointed at STRIPE_API_BASE (stripe-mock locally and in CI;
 * unset = api.stripe.com). Undefined when no secret key is configured:
 * then nothing is reported and top-ups are unavailable.
 */
export function createStripe(config: BillingConfig): Stripe | undefined {
  if (!config.STRIPE_SECRET_KEY) return undefined;
  const base = config.STRIPE_API_BASE ? new URL(config.STRIPE_API_BASE) : undefined;
  return new Stripe(config.STRIPE_SECRET_KEY, {
    ...(base ? { host: base.hostname, port: Number(base.port || (base.protocol === 'https:' ? 443 : 80)), protocol: base.protocol === 'https:' ? 'https' : 'http' } : {}),
    maxNetworkRetries: 2,
    timeout: 10_000,
  });
}

/** A webhook verifier that needs no API key. */
export const webhookVerifier = (): Stripe => new Stripe('sk_verify_only');

/** Minor units (cents) of the currency for an amount of credits: 1 credit = 1 unit of the tenant's currency. */
export function creditsToMinor(creditsMicros: bigint): bigint {
  // 1 credit = 1,000,000 micros = 100 minor units; round up so we never sell below price.
  return (creditsMicros + 9_999n) / 10_000n;
}
