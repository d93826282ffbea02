/** Thrown by `acquire` when the waiting queue is full. */
export class QueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`too many requests waiting (${limit}); retry later`);
  }
}

/** Thrown by `acquire` when the caller's signal aborts while it waits. */
export class AbortedWhileWaitingError extends Error {
  constructor() {
    super('request aborted while waiting for a sequence');
  }
}

interface Waiter<S> {
  resolve(slot: S): void;
  reject(error: Error): void;
  detach(): void;
}

/**
 * The engine's sequences (slots): a request holds one from its first token of
 * prefill to its last generated token. When none is free, requests wait in
 * arrival order (FIFO); a waiter whose client goes away leaves the queue.
 */
export class SequencePool<S> {
  private readonly free: S[];
  private readonly waiters: Waiter<S>[] = [];

  constructor(
    private readonly slots: readonly S[],
    private readonly maxWaiting: number,
  ) {
    this.free = [...slots];
  }

  get size(): number {
    return this.slots.length;
  }

  /** Slots held by a request. */
  get busy(): number {
    return this.slots.length - this.free.length;
  }

  /** Requests queued for a slot. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Resolves with a free slot, at once when one is free (the one `score` rates
   * highest, e.g. the longest cached prefix), otherwise when it is this
   * request's turn.
   */
  acquire(signal?: AbortSignal, score?: (slot: S) => number): Promise<S> {
    if (signal?.aborted) return Promise.reject(new AbortedWhileWaitingError());
    if (this.free.length > 0 && this.waiters.length === 0) return Promise.resolve(this.takeBest(score));
    if (this.waiters.length >= this.maxWaiting) return Promise.reject(new QueueFullError(this.maxWaiting));
    return new Promise<S>((resolve, reject) => {
      const onAbort = () => {
        const index = this.waiters.indexOf(waiter);
        if (index !== -1) this.waiters.splice(index, 1);
        reject(new AbortedWhileWaitingError());
      };
      const waiter: Waiter<S> = {
        resolve,
        reject,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Returns a slot: it goes straight to the longest-waiting request, if any. */
  release(slot: S): void {
    const next = this.waiters.shift();
    if (next) {
      next.detach();
      next.resolve(slot);
      return;
    }
    this.free.push(slot);
  }

  /** Rejects everyone still waiting (shutdown). */
  rejectWaiting(error: Error): void {
    for (const waiter of this.waiters.splice(0)) {
      waiter.detach();
      waiter.reject(error);
    }
  }

  private takeBest(score?: (slot: S) => number): S {
    let best = 0;
    if (score) {
      let bestScore = -Infinity;
      this.free.forEach((slot, index) => {
        const value = score(slot);
        if (value > bestScore) {
          bestScore = value;
          best = index;
        }
      });
    }
    return this.free.splice(best, 1)[0] as S;
  }
}
