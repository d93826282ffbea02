import { describe, expect, it } from 'vitest';
import { AbortedWhileWaitingError, QueueFullError, SequencePool } from '../src/engine/sequence-pool';

describe('SequencePool', () => {
  it('hands out free slots at once, preferring the best-scored one', async () => {
    const pool = new SequencePool(['a', 'b', 'c'], 10);
    expect(await pool.acquire(undefined, (slot) => (slot === 'b' ? 5 : 0))).toBe('b');
    expect(pool.busy).toBe(1);
  });

  it('queues requests in arrival order when every slot is busy', async () => {
    const pool = new SequencePool(['a'], 10);
    const first = await pool.acquire();
    const order: number[] = [];
    const waiting = [1, 2, 3].map((n) => pool.acquire().then((slot) => (order.push(n), slot)));
    expect(pool.waiting).toBe(3);
    for (let i = 0; i < 3; i++) {
      pool.release(i === 0 ? first : await waiting[i - 1]!);
      await waiting[i];
    }
    expect(order).toEqual([1, 2, 3]);
    expect(pool.waiting).toBe(0);
  });

  it('takes an aborted waiter out of the queue', async () => {
    const pool = new SequencePool(['a'], 10);
    const slot = await pool.acquire();
    const controller = new AbortController();
    const aborted = pool.acquire(controller.signal);
    const next = pool.acquire();
    controller.abort();
    await expect(aborted).rejects.toBeInstanceOf(AbortedWhileWaitingError);
    expect(pool.waiting).toBe(1);
    pool.release(slot);
    expect(await next).toBe('a');
  });

  it('refuses beyond the waiting limit', async () => {
    const pool = new SequencePool(['a'], 1);
    await pool.acquire();
    void pool.acquire();
    await expect(pool.acquire()).rejects.toBeInstanceOf(QueueFullError);
  });
});
