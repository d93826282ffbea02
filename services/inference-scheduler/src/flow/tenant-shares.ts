import type { Engine } from '../engines/engine';
import { lanesAtOrAbove, type Lane } from './lanes';
import { totalSlots, type SaturationLimits } from './saturation';
import { fairShare, type TenantRunning } from './tenant-running';

export const laneKey = (model: string, lane: Lane) => `${model}\u0000${lane}`;

/** What a tenant may hold of one model's engines while other tenants wait, as seen for one lane. */
export interface Shares {
  /** Running calls a tenant may hold while others wait. */
  share: number;
  /**
   * Calls without a first token yet (at or above the lane) a tenant may hold
   * while others wait: engines prefill one prompt at a time, so this is its
   * share of the engines' prefill.
   */
  prefillShare: number;
  /** Per tenant, its calls awaiting their first token at or above the lane. */
  prefilling: Map<string, number>;
  /**
   * The same share by estimated uncached prompt tokens (see `PREFILL_SHARE_HORIZON_MS`):
   * what the engines prefill in that horizon ÷ active tenants. Undefined when
   * prefill is not estimated (`ENGINE_PREFILL_THROUGHPUT` 0): `prefillShare` counts calls then.
   */
  prefillTokenShare?: number;
  /** Per tenant, the estimated uncached tokens of its calls awaiting their first token at or above the lane. */
  prefillTokens: Map<string, number>;
  /** Tenants waiting at or above the lane in question, with their queued calls. */
  waiting: Map<string, number>;
  /** Tenants with a call waiting: queued at or above the lane, or admitted without a first token yet (any lane). */
  blocking: Set<string>;
}

export interface SharesInput {
  model: string;
  lane: Lane;
  /** Queued calls per tenant, one map per lane at or above `lane`. */
  queued: ReadonlyArray<ReadonlyMap<string, number>>;
  running: TenantRunning;
  /** Calls without a first token yet, keyed by `laneKey(model, lane)`. */
  awaitingFirstToken: TenantRunning;
  /** Their estimated uncached prompt tokens, keyed the same way (optional: without it prefill is shared by calls). */
  prefillTokens?: TenantRunning;
  /** One engine's prefill rate in estimated tokens per second (0: prefill shared by calls). */
  prefillTokensPerSecond?: number;
  engines: readonly Engine[];
  limits: SaturationLimits;
  now?: number;
}

function queuedByTenant(queued: SharesInput['queued']): Map<string, number> {
  const waiting = new Map<string, number>();
  for (const lane of queued) for (const [tenant, count] of lane) waiting.set(tenant, (waiting.get(tenant) ?? 0) + count);
  return waiting;
}

/** Shares when per-tenant caps are off: only the queue counts (for the wait prediction). */
export function unlimitedShares(queued: SharesInput['queued']): Shares {
  const waiting = queuedByTenant(queued);
  return { share: Number.POSITIVE_INFINITY, prefillShare: Number.POSITIVE_INFINITY, waiting, blocking: new Set(waiting.keys()), prefilling: new Map(), prefillTokens: new Map() };
}

/**
 * Fair shares among the active tenants (running, queued, or awaiting a first
 * token): the engines' slots and the engines themselves (prefill is one
 * prompt at a time per engine) divided by their number, rounded up.
 */
export function tenantShares(input: SharesInput): Shares {
  const waiting = queuedByTenant(input.queued);
  const blocking = new Set(waiting.keys());
  const prefilling = new Map<string, number>();
  const prefillTokens = new Map<string, number>();
  for (const above of lanesAtOrAbove(input.lane)) {
    const key = laneKey(input.model, above);
    for (const tenant of input.awaitingFirstToken.tenants(key)) {
      blocking.add(tenant);
      prefilling.set(tenant, (prefilling.get(tenant) ?? 0) + input.awaitingFirstToken.count(key, tenant));
    }
    for (const tenant of input.prefillTokens?.tenants(key) ?? []) prefillTokens.set(tenant, (prefillTokens.get(tenant) ?? 0) + input.prefillTokens!.count(key, tenant));
  }
  const active = new Set(blocking);
  for (const tenant of input.running.tenants(input.model)) active.add(tenant);
  const now = input.now ?? Date.now();
  let slots = 0;
  let engines = 0;
  for (const engine of input.engines) {
    if (!engine.breaker.allows(now)) continue;
    slots += totalSlots(engine, input.limits, now);
    engines++;
  }
  const rate = input.prefillTokensPerSecond ?? 0;
  const prefillTokenShare = input.prefillTokens && rate > 0 ? (engines * rate * PREFILL_SHARE_HORIZON_MS) / 1000 / Math.max(1, active.size) : undefined;
  return { share: fairShare(slots, active.size), prefillShare: fairShare(engines, active.size), prefillTokenShare, waiting, blocking, prefilling, prefillTokens };
}

/**
 * The engines' prefill a tenant may hold while others wait, by tokens: what
 * all engines prefill in this long, divided among the active tenants. With 8
 * engines and 5 tenants that is 1.6 engine-seconds: one cold long prompt of a
 * second plus a cached one, but not two cold ones.
 */
export const PREFILL_SHARE_HORIZON_MS = 1_000;

/**
 * Whether a call estimated at `tokens` uncached prompt tokens keeps its tenant
 * within its prefill share: fewer calls without a first token than its share
 * of the engines (engines ÷ active tenants, rounded up), and, when tokens are
 * estimated, their uncached tokens with this call's within its token share
 * (a tenant with nothing in prefill may always send one call, however long).
 * So a tenant flooding cold long prompts has one of them in the engines'
 * prefill at a time, not one per engine of its share.
 */
export function withinPrefillShare(shares: Shares, tenantId: string, tokens: number | undefined): boolean {
  const calls = shares.prefilling.get(tenantId) ?? 0;
  if (calls >= shares.prefillShare) return false;
  if (calls === 0 || shares.prefillTokenShare === undefined || tokens === undefined) return true;
  return (shares.prefillTokens.get(tenantId) ?? 0) + tokens <= shares.prefillTokenShare;
}
