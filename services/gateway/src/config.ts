import { baseConfigSchema, csv, flag, grpcAddress, z } from '@ai-platform/platform';
import { tiersSchema, DEFAULT_TIERS } from './limits/limit-config';

export const configSchema = baseConfigSchema.extend({
  // The public port: GATEWAY_PORT, else HTTP_PORT, else 8080.
  HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(Number(process.env.GATEWAY_PORT ?? 8080)),
  DATABASE_URL: z.string().startsWith('postgres'),
  REDIS_URL: z.string().startsWith('redis'),
  ORCHESTRATOR_URL: grpcAddress(),
  BILLING_URL: grpcAddress(),
  BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /** Largest max_tokens a request may ask for. */
  MAX_OUTPUT_TOKENS: z.coerce.number().int().min(1).default(4096),
  DEFAULT_MAX_TOKENS: z.coerce.number().int().min(1).default(512),
  UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(1000).default(300_000),
  MODELS_CACHE_MS: z.coerce.number().int().min(0).default(5_000),
  /** How long a turn waits for its first token before the answer is committed as a 200; a failure before it gets an HTTP status. 0: commit at once. */
  FIRST_EVENT_WAIT_MS: z.coerce.number().int().min(0).max(60_000).default(5_000),

  /** Bearer credential of the admin API (/admin/*); unset disables it. At least 32 characters. */
  ADMIN_TOKEN: z.string().min(32).optional(),
  /** JWT sign-in for web and mobile clients: all three or none. */
  JWT_JWKS_URL: z.url().optional(),
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_AUDIENCE: z.string().min(1).optional(),
  /** Claim naming the tenant; `sub` is the user. */
  JWT_TENANT_CLAIM: z.string().default('tenant_id'),

  /** Tiers of rate limits (JSON); a tenant's row picks one and may override it. */
  RATE_LIMIT_TIERS: z.string().default(JSON.stringify(DEFAULT_TIERS)).transform((text, ctx) => {
    try {
      return tiersSchema.parse(JSON.parse(text));
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `invalid tiers: ${(error as Error).message}` });
      return z.NEVER;
    }
  }),
  /** Bound on every Redis command on the request path; past it the limit's fail policy applies. */
  REDIS_TIMEOUT_MS: z.coerce.number().int().min(5).max(10_000).default(150),
  IDEMPOTENCY_TTL_S: z.coerce.number().int().min(60).default(24 * 3600),
  /** How long a request may run before the duplicate lock is considered abandoned. */
  IDEMPOTENCY_LOCK_S: z.coerce.number().int().min(5).default(600),

  CORS_ORIGINS: csv().default([]),
  /** Whole-request timeout for non-streaming requests (socket-level, Node's requestTimeout). */
  REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1000).default(120_000),
  MAX_HEADER_BYTES: z.coerce.number().int().min(1024).max(64 * 1024).default(16 * 1024),

  JOBS_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  /** Redis key prefix of the job and webhook queues: gateways sharing it share their work. */
  QUEUE_PREFIX: z.string().regex(/^[\w-]{1,64}$/, 'letters, digits, _ and - only').default('bull'),
  WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(30).default(8),
  WEBHOOK_BACKOFF_MS: z.coerce.number().int().min(10).default(2_000),
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  /** Hosts (names or IPs) that webhooks may reach although they resolve to private or loopback addresses. */
  WEBHOOK_ALLOWED_PRIVATE_HOSTS: csv().default([]),
  WEBHOOK_ALLOW_HTTP: flag(false),
}).refine((config) => [config.JWT_JWKS_URL, config.JWT_ISSUER, config.JWT_AUDIENCE].filter(Boolean).length % 3 === 0, {
  message: 'JWT_JWKS_URL, JWT_ISSUER and JWT_AUDIENCE go together', path: ['JWT_JWKS_URL'],
});

export type GatewayConfig = z.infer<typeof configSchema>;
