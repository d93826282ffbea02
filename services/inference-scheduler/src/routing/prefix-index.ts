/**
 * Which prompt blocks one engine probably holds in its prefix cache: the
 * blocks of the requests we sent it, least recently used evicted first,
 * capped at the engine's cache size in blocks. Unlike an index that never
 * forgets (the vLLM production-stack router's assumption), old prefixes fall
 * out the way the engine's own LRU evicts them, so a long-gone prefix stops
 * attracting traffic to an engine that no longer has it.
 *
 * Recency is a counter stored per block: a touch updates the value in place,
 * which keeps the Map from rehashing on every request (a delete + re-insert
 * LRU does, and that showed as millisecond spikes in the decision-cost
 * benchmark). Eviction runs in batches once the index is a quarter over its
 * capacity, dropping the oldest blocks: amortised O(log n) per block.
 */
export class PrefixIndex {
  private readonly blocks = new Map<number, number>();
  private tick = 0;

  constructor(private capacity: number) {}

  get size(): number {
    return this.blocks.size;
  }

  /** Follows the engine's reported cache size when it changes. */
  resize(capacity: number): void {
    this.capacity = Math.max(1, capacity);
    if (this.blocks.size > this.capacity) this.evictTo(this.capacity);
  }

  /** Leading blocks of `hashes` that the engine probably has (chained hashes: a miss ends the prefix). */
  matchedPrefix(hashes: readonly number[]): number {
    let matched = 0;
    while (matched < hashes.length && this.blocks.has(hashes[matched]!)) matched++;
    return matched;
  }

  /** Records that the engine has just computed (or reused) these blocks. */
  record(hashes: readonly number[]): void {
    // Later blocks get older ticks than earlier ones: the prompt's first blocks
    // are the ones other requests share, and the engine keeps them longest too.
    const base = this.tick + hashes.length;
    for (let i = 0; i < hashes.length; i++) this.blocks.set(hashes[i]!, base - i);
    this.tick = base + 1;
    if (this.blocks.size > this.capacity * 1.25) this.evictTo(this.capacity);
  }

  clear(): void {
    this.blocks.clear();
  }

  private evictTo(target: number) {
    const ticks = [...this.blocks.values()].sort((a, b) => a - b);
    const cutoff = ticks[this.blocks.size - target - 1]!;
    for (const [hash, tick] of this.blocks) if (tick <= cutoff) this.blocks.delete(hash);
  }
}
