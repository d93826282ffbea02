/**
 * Which prompt blocks one engine probably holds in its prefix cache: the
 * blocks of the requests we sent it, in least-recently-used order, capped at
 * the engine's cache size in blocks. Unlike an index that never forgets (the
 * vLLM production-stack router's assumption), old prefixes fall out the way
 * the engine's own LRU evicts them, so a long-gone prefix stops attracting
 * traffic to an engine that no longer has it.
 */
export class PrefixIndex {
  /** Insertion order is recency: a Map re-inserted on touch is an O(1) LRU. */
  private readonly blocks = new Map<number, true>();

  constructor(private capacity: number) {}

  get size(): number {
    return this.blocks.size;
  }

  /** Follows the engine's reported cache size when it changes. */
  resize(capacity: number): void {
    this.capacity = Math.max(1, capacity);
    this.evict();
  }

  /** Leading blocks of `hashes` that the engine probably has (chained hashes: a miss ends the prefix). */
  matchedPrefix(hashes: readonly number[]): number {
    let matched = 0;
    while (matched < hashes.length && this.blocks.has(hashes[matched]!)) matched++;
    return matched;
  }

  /** Records that the engine has just computed (or reused) these blocks. */
  record(hashes: readonly number[]): void {
    // Oldest first, so the prompt's first blocks end up most recent: they are
    // the ones other requests share, and the engine's LRU keeps them longest too.
    for (let i = hashes.length - 1; i >= 0; i--) {
      const hash = hashes[i]!;
      this.blocks.delete(hash);
      this.blocks.set(hash, true);
    }
    this.evict();
  }

  clear(): void {
    this.blocks.clear();
  }

  private evict() {
    if (this.blocks.size <= this.capacity) return;
    const iterator = this.blocks.keys();
    while (this.blocks.size > this.capacity) this.blocks.delete(iterator.next().value as number);
  }
}
