/** DI tokens of the billing service's own infrastructure. */
export const PG_POOL = Symbol('PG_POOL');
export const KAFKA = Symbol('KAFKA');
export const PRICE_TABLE = Symbol('PRICE_TABLE');
/** ioredis client, or undefined when REDIS_URL is not set (no kill-switch broadcast). */
export const REDIS = Symbol('REDIS');
/** Transactional outbox of billing (alerts to Kafka). */
export const OUTBOX = Symbol('OUTBOX');
/** The Stripe SDK client, or undefined when Stripe is not configured. */
export const STRIPE = Symbol('STRIPE');
