/**
 * One priority lane: a FIFO per tenant, served round robin across tenants
 * (deficit round robin with a quantum of one request). A tenant with a
 * thousand queued requests gets the same turn as a tenant with one, so a noisy
 * tenant only delays itself.
 */
export class FairQueue<T extends { tenantId: string }> {
  private readonly byTenant = new Map<string, T[]>();
  /** Tenants with queued items, in service order; `cursor` is whose turn it is. */
  private ring: string[] = [];
  private cursor = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(item: T): void {
    let queue = this.byTenant.get(item.tenantId);
    if (!queue) {
      queue = [];
      this.byTenant.set(item.tenantId, queue);
      // A newly active tenant goes just before the cursor: it waits one full round at most.
      this.ring.splice(this.cursor, 0, item.tenantId);
      this.cursor = (this.cursor + 1) % this.ring.length;
    }
    queue.push(item);
    this.count++;
  }

  /**
   * Takes the next item whose head `eligible` accepts (skipping tenants whose
   * head cannot go yet). With `rank`, the eligible tenant with the lowest rank
   * goes first (e.g. its tenant's running requests), round-robin order breaking ties.
   */
  take(eligible: (item: T) => boolean = () => true, rank?: (head: T) => number): T | undefined {
    let chosen = -1;
    let best = Number.POSITIVE_INFINITY;
    for (let step = 0; step < this.ring.length; step++) {
      const index = (this.cursor + step) % this.ring.length;
      const tenant = this.ring[index]!;
      const head = this.byTenant.get(tenant)![0]!;
      if (!eligible(head)) continue;
      const value = rank ? rank(head) : 0;
      if (value < best) {
        best = value;
        chosen = index;
        if (!rank) break;
      }
    }
    if (chosen < 0) return undefined;
    const tenant = this.ring[chosen]!;
    const queue = this.byTenant.get(tenant)!;
    const head = queue.shift()!;
    this.count--;
    if (queue.length === 0) {
      this.byTenant.delete(tenant);
      this.ring.splice(chosen, 1);
      this.cursor = this.ring.length === 0 ? 0 : chosen % this.ring.length;
    } else {
      this.cursor = (chosen + 1) % this.ring.length;
    }
    return head;
  }

  /** Queued items of each tenant that `match` accepts (tenants without any are left out). */
  countsByTenant(match: (item: T) => boolean): Map<string, number> {
    const counts = new Map<string, number>();
    for (const [tenant, queue] of this.byTenant) {
      let n = 0;
      for (const item of queue) if (match(item)) n++;
      if (n > 0) counts.set(tenant, n);
    }
    return counts;
  }

  /** Removes one item (cancelled or expired); true when it was queued. */
  remove(item: T): boolean {
    const queue = this.byTenant.get(item.tenantId);
    const position = queue?.indexOf(item) ?? -1;
    if (!queue || position < 0) return false;
    queue.splice(position, 1);
    this.count--;
    if (queue.length === 0) {
      this.byTenant.delete(item.tenantId);
      const index = this.ring.indexOf(item.tenantId);
      this.ring.splice(index, 1);
      if (index < this.cursor) this.cursor--;
      if (this.cursor >= this.ring.length) this.cursor = 0;
    }
    return true;
  }

  /** Oldest-first items of every tenant, for shedding. */
  *items(): IterableIterator<T> {
    for (const queue of this.byTenant.values()) yield* queue;
  }
}
