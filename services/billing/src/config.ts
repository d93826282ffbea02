import { Topics } from '@ai-platform/contracts';
import { baseConfigSchema, csv, flag, z } from '@ai-platform/platform';

const price = z.object({
  model: z.string().min(1).max(256),
  inputMicrosPerMillion: z.number().int().min(0),
  cachedInputMicrosPerMillion: z.number().int().min(0),
  outputMicrosPerMillion: z.number().int().min(0),
});

/** JSON array of model prices (micros per million tokens). */
const priceList = () =>
  z
    .string()
    .transform((text, context) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        context.addIssue({ code: 'custom', message: 'must be a JSON array of prices' });
        return z.NEVER;
      }
    })
    .pipe(z.array(price).min(1));

export const billingConfigSchema = baseConfigSchema.extend({
  // 0 binds a free port (tests).
  HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8083),
  GRPC_PORT: z.coerce.number().int().min(0).max(65535).default(50053),
  DATABASE_URL: z.string().min(1),
  // Up to USAGE_PARTITIONS_CONCURRENTLY (6) usage transactions and the background workers hold
  // connections at once during a backlog; Reserve must still find one free.
  DATABASE_POOL_MAX: z.coerce.number().int().min(2).max(200).default(20),
  KAFKA_BROKERS: csv().refine((brokers) => brokers.length > 0, 'must list at least one host:port'),
  KAFKA_CONSUMER_GROUP: z.string().min(1).max(200).default('billing-usage'),
  /** How long the broker waits for a silent consumer (e.g. a killed replica) before handing its partitions to another. */
  KAFKA_SESSION_TIMEOUT_MS: z.coerce.number().int().min(6_000).max(300_000).default(30_000),
  /** Topic the usage consumer reads and its dead-letter topic (tests use a per-run pair). */
  USAGE_TOPIC: z.string().min(1).max(249).default(Topics.usageEvents),
  USAGE_DLQ_TOPIC: z.string().min(1).max(249).default(Topics.usageEventsDeadLetter),
  /** Credits granted to a tenant the first time billing sees it. */
  SIGNUP_GRANT_CREDITS: z.coerce.number().int().min(0).max(1_000_000_000).default(100),
  /** How long a hold lives before the sweeper settles it conservatively. */
  RESERVATION_TTL_SECONDS: z.coerce.number().int().min(1).max(7 * 24 * 3600).default(600),
  /** Replaces the built-in price table (@ai-platform/pricing DEFAULT_PRICES) when set. */
  MODEL_PRICES_JSON: priceList().optional(),
  EXPIRY_SWEEP_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  /**
   * Whether this process consumes the usage topic. A deployment can run the consumer apart
   * (its own replicas, `true`) from the replicas that answer Reserve on every request
   * (`false`), so settling a backlog never waits Reserve calls on the same event loop.
   */
  USAGE_CONSUMER_ENABLED: flag(true),
  /** Usage events settled per Postgres transaction (the consumer's eachBatch chunk). */
  USAGE_BATCH_SIZE: z.coerce.number().int().min(1).max(20_000).default(2_000),
  /**
   * Partitions settled at once, each chunk in its own transaction. Usage events are keyed by
   * tenant, so concurrent chunks lock disjoint accounts and Postgres works while this process decodes.
   */
  USAGE_PARTITIONS_CONCURRENTLY: z.coerce.number().int().min(1).max(64).default(6),
  /**
   * Bytes one fetch from the broker may return, over all partitions. kafkajs fetches again only
   * when every batch of the last fetch is settled, so a fetch must carry work for every
   * concurrent partition: at its default (10 MiB) a backlog came one or two partitions at a time.
   */
  USAGE_FETCH_MAX_BYTES: z.coerce.number().int().min(1024 * 1024).max(512 * 1024 * 1024).default(64 * 1024 * 1024),
  /**
   * A fetch waits until this many bytes are there, or USAGE_FETCH_MAX_WAIT_MS has passed. Under
   * a steady flow, a fetch that returns at once carries a few events per partition, and each
   * chunk pays a whole transaction (~8 statements and a commit) for them.
   */
  USAGE_FETCH_MIN_BYTES: z.coerce.number().int().min(1).max(64 * 1024 * 1024).default(1),
  /** The longest a fetch waits for USAGE_FETCH_MIN_BYTES: what usage settlement may lag by, at most, for batching. */
  USAGE_FETCH_MAX_WAIT_MS: z.coerce.number().int().min(10).max(10_000).default(200),
  /** Bytes one fetch may return for one partition. */
  USAGE_FETCH_PARTITION_MAX_BYTES: z.coerce.number().int().min(64 * 1024).max(128 * 1024 * 1024).default(8 * 1024 * 1024),
  /** Kill-switch broadcast to the gateways; unset = Reserve alone enforces it. */
  REDIS_URL: z.string().min(1).optional(),
  KILL_SWITCH_RECONCILE_MS: z.coerce.number().int().min(100).default(2_000),
  WEBHOOK_DELIVERY_INTERVAL_MS: z.coerce.number().int().min(100).default(1_000),
  PRICE_RELOAD_MS: z.coerce.number().int().min(100).default(10_000),
  /** Stripe: unset key = no Stripe (no meter reports, no top-ups). */
  STRIPE_SECRET_KEY: z.string().min(1).optional(),
  /** e.g. http://127.0.0.1:12111 for stripe-mock; unset = api.stripe.com. */
  STRIPE_API_BASE: z.string().url().optional(),
  STRIPE_WEBHOOK_SECRET: z.string().min(1).optional(),
  STRIPE_WEBHOOK_TOLERANCE_SECONDS: z.coerce.number().int().min(1).default(300),
  STRIPE_METER_EVENT_NAME: z.string().min(1).default('ai_platform_usage_micros'),
  METER_REPORT_INTERVAL_MS: z.coerce.number().int().min(100).default(10_000),
  AUTO_TOPUP_INTERVAL_MS: z.coerce.number().int().min(100).default(15_000),
  TOP_UP_SUCCESS_URL: z.string().url().default('https://example.com/billing/success'),
  TOP_UP_CANCEL_URL: z.string().url().default('https://example.com/billing/cancel'),
});

export type BillingConfig = z.infer<typeof billingConfigSchema>;
