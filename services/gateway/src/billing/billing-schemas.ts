import { z } from 'zod';

/** Query strings carry text; a limit is a whole number in range, or the request is refused. */
const limit = (max: number) => z.coerce.number().int().min(1).max(max).optional();
const isoDate = z.iso.datetime({ offset: true }).optional();
const ordered = (range: { from?: string; to?: string }) => !range.from || !range.to || Date.parse(range.from) <= Date.parse(range.to);
const orderedRange = { message: 'from must not be after to', path: ['from'] };

export const billingHoldsQuery = z.object({ limit: limit(500) }).strict();

/** `before` is the `cursor` of the last entry of the previous page (an entry id). */
export const billingLedgerQuery = z
  .object({ limit: limit(500), before: z.string().regex(/^[1-9][0-9]{0,14}$/, 'must be the cursor of a ledger entry').optional() })
  .strict();

export const billingUsageQuery = z
  .object({
    group_by: z.string().max(64).regex(/^(day|model|user|key)(,(day|model|user|key))*$/, 'must be a comma-separated list of day, model, user and key').optional(),
    from: isoDate,
    to: isoDate,
  })
  .strict()
  .refine(ordered, orderedRange);

export const costReportQuery = z.object({ from: isoDate, to: isoDate, limit: limit(1000) }).strict().refine(ordered, orderedRange);

export const topUpRequest = z
  .object({
    /** Whole credits to buy (1 credit = 1,000,000 micro-credits). */
    credits: z.number().int().min(1).max(1_000_000),
    currency: z.string().regex(/^[a-zA-Z]{3}$/, 'must be a 3-letter ISO currency code').optional(),
    success_url: z.url({ protocol: /^https?$/ }).max(2048).optional(),
    cancel_url: z.url({ protocol: /^https?$/ }).max(2048).optional(),
  })
  .strict();

export const liftKillSwitchRequest = z
  .object({
    tenant_id: z.string().min(1).max(256),
    scope: z.enum(['tenant', 'user', 'api_key']).optional(),
    /** The user or API key id; empty for scope tenant. */
    subject: z.string().max(256).optional(),
    period: z.enum(['day', 'month']).optional(),
  })
  .strict();
