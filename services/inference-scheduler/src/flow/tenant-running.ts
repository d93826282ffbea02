/**
 * Requests each tenant has admitted and not yet finished, per model: what a
 * tenant holds of the engines now, for per-tenant running caps and for the
 * order in which waiting tenants are served (fewest running first).
 */
export class TenantRunning {
  private readonly byModel = new Map<string, Map<string, number>>();

  add(model: string, tenantId: string): void {
    let tenants = this.byModel.get(model);
    if (!tenants) this.byModel.set(model, (tenants = new Map()));
    tenants.set(tenantId, (tenants.get(tenantId) ?? 0) + 1);
  }

  remove(model: string, tenantId: string): void {
    const tenants = this.byModel.get(model);
    const left = (tenants?.get(tenantId) ?? 1) - 1;
    if (!tenants) return;
    if (left > 0) tenants.set(tenantId, left);
    else tenants.delete(tenantId);
    if (tenants.size === 0) this.byModel.delete(model);
  }

  count(model: string, tenantId: string): number {
    return this.byModel.get(model)?.get(tenantId) ?? 0;
  }

  tenants(model: string): Iterable<string> {
    return this.byModel.get(model)?.keys() ?? [];
  }

  /** Every admitted, unfinished request (for the leak checks). */
  total(): number {
    let total = 0;
    for (const tenants of this.byModel.values()) for (const count of tenants.values()) total += count;
    return total;
  }
}

/** A tenant's fair share of `slots` among `activeTenants` (running or waiting): at least one request. */
export function fairShare(slots: number, activeTenants: number): number {
  return Math.max(1, Math.ceil(slots / Math.max(1, activeTenants)));
}

/**
 * Below its fair shares (running calls, calls awaiting their first token) a tenant may start; at or above it only while no other
 * tenant has a call waiting — queued here, or admitted and still without its
 * first token (in an engine's queue or prefill) — work-conserving otherwise.
 */
export function mayStart(underShare: boolean, waitingTenants: Iterable<string>, tenantId: string): boolean {
  if (underShare) return true;
  for (const tenant of waitingTenants) if (tenant !== tenantId) return false;
  return true;
}

/** Queued calls served before a new one of `tenantId`: all of its own tenant's, and of every other tenant at most one more (tenants take turns). */
export function servedBefore(waiting: ReadonlyMap<string, number>, tenantId: string): number {
  const own = waiting.get(tenantId) ?? 0;
  let ahead = 0;
  for (const [tenant, count] of waiting) ahead += tenant === tenantId ? count : Math.min(count, own + 1);
  return ahead;
}
