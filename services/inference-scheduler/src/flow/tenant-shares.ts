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
  return { share: Number.POSITIVE_INFINITY, prefillShare: Number.POSITIVE_INFINITY, waiting, blocking: new Set(waiting.keys()), prefilling: new Map() };
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
  for (const above of lanesAtOrAbove(input.lane)) {
    const key = laneKey(input.model, above);
    for (const tenant of input.awaitingFirstToken.tenants(key)) {
      blocking.add(tenant);
      prefilling.set(tenant, (prefilling.get(tenant) ?? 0) + input.awaitingFirstToken.count(key, tenant));
    }
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
  return { share: fairShare(slots, active.size), prefillShare: fairShare(engines, active.size), waiting, blocking, prefilling };
}
