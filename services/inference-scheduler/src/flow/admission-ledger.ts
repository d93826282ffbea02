import { queueWait } from '../metrics';
import type { Lane } from './lanes';
import { TenantRunning } from './tenant-running';
import { laneKey } from './tenant-shares';

export interface Admission {
  /** Send to an overflow provider: the local pool could not take the request within its deadline. */
  overflow: boolean;
  waitedMs: number;
  /** Call once the first attempt holds its engine (or the call ended): frees the reserved slot. */
  started(): void;
  /** Call at the first token: the call no longer waits (its tenant no longer holds others at their share). */
  firstToken(): void;
  /** Call when the call ended (any outcome): the tenant's running count drops and waiters may go. */
  finished(): void;
}

/**
 * What admission has handed out and not taken back yet: slots granted but not
 * on an engine, each tenant's running calls, its calls without a first token,
 * and the estimated uncached prompt tokens of those (its share of the
 * engines' prefill, by tokens). `grant` returns the handle that releases them.
 */
export class AdmissionLedger {
  /** Slots granted whose first attempt has not taken its engine yet, per model. */
  readonly reserved = new Map<string, number>();
  readonly running = new TenantRunning();
  /** Admitted calls without a first token yet, keyed by `laneKey(model, lane)`: still waiting, in the engine's queue or prefill. */
  readonly awaitingFirstToken = new TenantRunning();
  /** Of those, the estimated uncached prompt tokens, keyed the same way. */
  readonly prefillTokens = new TenantRunning();

  constructor(private readonly onFinished: () => void) {}

  reservedSlots(model?: string): number {
    if (model !== undefined) return this.reserved.get(model) ?? 0;
    let total = 0;
    for (const count of this.reserved.values()) total += count;
    return total;
  }

  /** Records an admitted call whose prefill is estimated at `prefillTokens` uncached tokens. */
  grant(request: { model: string; lane: Lane; tenantId: string }, since: number, overflow: boolean, prefillTokens = 0): Admission {
    const waitedMs = Date.now() - since;
    queueWait.observe({ priority: request.lane, result: 'admitted' }, waitedMs / 1000);
    if (overflow) return { overflow, waitedMs, started: () => undefined, firstToken: () => undefined, finished: () => undefined };
    const key = laneKey(request.model, request.lane);
    const tokens = Math.max(0, Math.round(prefillTokens));
    this.reserved.set(request.model, (this.reserved.get(request.model) ?? 0) + 1);
    this.running.add(request.model, request.tenantId);
    this.awaitingFirstToken.add(key, request.tenantId);
    if (tokens > 0) this.prefillTokens.add(key, request.tenantId, tokens);
    let started = false;
    let finished = false;
    let firstToken = false;
    const first = () => {
      if (firstToken) return;
      firstToken = true;
      this.awaitingFirstToken.remove(key, request.tenantId);
      if (tokens > 0) this.prefillTokens.remove(key, request.tenantId, tokens);
    };
    const start = () => {
      if (started) return;
      started = true;
      const left = (this.reserved.get(request.model) ?? 1) - 1;
      if (left > 0) this.reserved.set(request.model, left);
      else this.reserved.delete(request.model);
    };
    return {
      overflow,
      waitedMs,
      started: start,
      firstToken: first,
      finished: () => {
        if (finished) return;
        finished = true;
        start();
        first();
        this.running.remove(request.model, request.tenantId);
        this.onFinished();
      },
    };
  }
}
