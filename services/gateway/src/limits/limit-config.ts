import { z } from 'zod';

/** What one scope (a key, a user or a whole tenant) may spend per minute; absent = unlimited. */
export const scopeLimitsSchema = z
  .object({
    requests_per_minute: z.number().int().positive().optional(),
    tokens_per_minute: z.number().int().positive().optional(),
    /** Money per minute in micro-units (1 credit = 1,000,000). */
    cost_micros_per_minute: z.number().int().positive().optional(),
  })
  .strict();

export const tierSchema = z
  .object({
    key: scopeLimitsSchema.optional(),
    user: scopeLimitsSchema.optional(),
    tenant: scopeLimitsSchema.optional(),
    /** When Redis is slow or down: admit (open) or refuse with 503 (closed). Per counter kind. */
    on_redis_failure: z
      .object({ requests: z.enum(['open', 'closed']).default('open'), tokens: z.enum(['open', 'closed']).default('open'), cost: z.enum(['open', 'closed']).default('closed') })
      .strict()
      .default({ requests: 'open', tokens: 'open', cost: 'closed' }),
  })
  .strict();

export const tiersSchema = z.record(z.string().min(1).max(64), tierSchema).refine((tiers) => 'default' in tiers, 'a "default" tier is required');

export type ScopeLimits = z.infer<typeof scopeLimitsSchema>;
export type Tier = z.infer<typeof tierSchema>;
export type Tiers = z.infer<typeof tiersSchema>;

export const DEFAULT_TIERS: z.input<typeof tiersSchema> = {
  default: {
    key: { requests_per_minute: 600, tokens_per_minute: 200_000 },
    user: { requests_per_minute: 600, tokens_per_minute: 200_000 },
    tenant: { requests_per_minute: 3_000, tokens_per_minute: 1_000_000, cost_micros_per_minute: 50_000_000 },
    on_redis_failure: { requests: 'open', tokens: 'open', cost: 'closed' },
  },
};

/** A tenant's effective tier: its named tier with its own overrides merged over it. */
export function effectiveTier(tiers: Tiers, name: string | undefined, overrides: unknown): Tier {
  const base = tiers[name ?? 'default'] ?? tiers.default!;
  const parsed = overrides ? tierSchema.partial().safeParse(overrides) : undefined;
  if (!parsed?.success) return base;
  const o = parsed.data;
  return {
    key: { ...base.key, ...o.key },
    user: { ...base.user, ...o.user },
    tenant: { ...base.tenant, ...o.tenant },
    on_redis_failure: { ...base.on_redis_failure, ...o.on_redis_failure },
  };
}
