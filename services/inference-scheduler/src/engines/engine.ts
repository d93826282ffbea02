import { PrefixIndex } from '../routing/prefix-index';
import { CircuitBreaker } from '../resilience/circuit-breaker';
import type { EngineWire } from './chat-stream';
import type { EngineLoadMetrics } from './prometheus';

/** vLLM's default KV block size, used until the engine reports `vllm:cache_config_info`. */
export const DEFAULT_BLOCK_SIZE = 16;
/** Blocks assumed in an engine's cache until it reports `num_gpu_blocks`. */
export const DEFAULT_CACHE_BLOCKS = 8_192;

/** What speaks behind an engine: a vLLM-compatible server we poll, or an external provider API. */
export type EngineKind = 'vllm' | 'openai' | 'anthropic';

export interface ServedModel {
  id: string;
  /** Context length the engine reports (`max_model_len`); undefined when it does not say. */
  maxModelLen?: number;
  /** `embed`: an embedding model (the cpu-engine says so in /v1/models); anything else generates. */
  task?: 'embed';
}

/**
 * What the scheduler knows about one engine: health and models from polling,
 * load from its metrics plus the requests this scheduler has open on it.
 */
export class Engine {
  healthy = false;
  /** Models it generates with (Generate routes only to these). */
  models: ServedModel[] = [];
  /** Embedding models it says it serves (Embed tries these engines first). */
  embeddingModels: ServedModel[] = [];
  /** Requests this scheduler has open on the engine right now. */
  inFlight = 0;
  /** Of those, batch requests (capped per engine so interactive lanes keep headroom). */
  batchInFlight = 0;
  /**
   * Requests the engine runs at once, as far as we have seen: its running
   * count in the last scrape that showed requests waiting (vLLM's
   * max_num_seqs or KV limit); undefined until seen, or once it runs more.
   */
  runningLimit?: number;
  /** Estimated uncached prompt tokens of our requests here that have no first token yet (the prefill backlog). */
  pendingPrefillTokens = 0;
  /** Load the engine reported in its last successful scrape; undefined when unknown. */
  scraped?: EngineLoadMetrics;
  /**
   * Our own requests the last scrape may include: the most we had open while
   * it ran. Subtracting the peak (not the count at either end) keeps a request
   * that started or ended during the scrape from reading as someone else's.
   */
  inFlightAtScrape = 0;
  private scrapePeak = 0;
  lastError?: string;
  /** Polls in a row that timed out (a busy engine is given one more chance). */
  consecutiveTimeouts = 0;
  lastPolledAt?: number;
  /** When the last scrape with usable metrics ended (ms since epoch); undefined: never. */
  scrapedAt?: number;
  /** Tokens per KV block, from the engine's `vllm:cache_config_info`. */
  blockSize = DEFAULT_BLOCK_SIZE;
  /** Prompt blocks this engine probably has cached, for the prefix scorer. */
  readonly prefixIndex = new PrefixIndex(DEFAULT_CACHE_BLOCKS);
  /** Errors and timeouts of Generate attempts; an open breaker keeps the engine out of routing. */
  breaker = new CircuitBreaker();
  readonly kind: EngineKind = 'vllm';
  /** How requests are sent and streams read; undefined: vLLM's OpenAI-compatible API. */
  readonly wire?: EngineWire;

  constructor(
    /** Stable name used in logs, metrics and usage events: the URL's `host:port`. */
    readonly id: string,
    readonly baseUrl: string,
  ) {}

  static fromUrl(baseUrl: string): Engine {
    const url = new URL(baseUrl);
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    const path = url.pathname.replace(/\/+$/, '');
    return new Engine(`${url.hostname}:${port}${path}`, baseUrl.replace(/\/+$/, ''));
  }

  /** Marks the start of a metrics scrape. */
  beginScrape(): void {
    this.scrapePeak = this.inFlight;
  }

  /** Records a scrape's result (undefined: unknown load). */
  endScrape(scraped: EngineLoadMetrics | undefined, now = Date.now()): void {
    this.scraped = scraped;
    this.inFlightAtScrape = Math.max(this.scrapePeak, this.inFlight);
    if (!scraped) return;
    this.scrapedAt = now;
    if (scraped.waiting > 0 && scraped.running > 0) this.runningLimit = scraped.running;
    else if (this.runningLimit !== undefined && scraped.running > this.runningLimit) this.runningLimit = undefined;
    if (scraped.blockSize !== undefined) this.blockSize = scraped.blockSize;
    if (scraped.cacheBlocks !== undefined) this.prefixIndex.resize(scraped.cacheBlocks);
  }

  /** Milliseconds since the last usable metrics, Infinity when there never were any. */
  metricsAgeMs(now = Date.now()): number {
    return this.scrapedAt === undefined ? Number.POSITIVE_INFINITY : now - this.scrapedAt;
  }

  /** Counts one more request of ours on the engine. */
  acquire(batch = false): void {
    if (batch) this.batchInFlight++;
    this.inFlight++;
    this.scrapePeak = Math.max(this.scrapePeak, this.inFlight);
  }

  release(batch = false): void {
    if (batch) this.batchInFlight = Math.max(0, this.batchInFlight - 1);
    this.inFlight = Math.max(0, this.inFlight - 1);
  }

  serves(model: string): boolean {
    return this.models.some((served) => served.id === model);
  }

  model(model: string): ServedModel | undefined {
    return this.models.find((served) => served.id === model);
  }

  /**
   * Requests other clients have on the engine, as of the last scrape: what it
   * reported (running + waiting) less what we had open then, never negative.
   */
  get externalLoad(): number {
    if (!this.scraped) return 0;
    return Math.max(0, this.scraped.running + this.scraped.waiting - this.inFlightAtScrape);
  }

  /** Requests the engine is working on or queueing now, to the best of our knowledge. */
  get load(): number {
    return this.inFlight + this.externalLoad;
  }
}
