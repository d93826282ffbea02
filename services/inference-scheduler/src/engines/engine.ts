import type { EngineLoadMetrics } from './prometheus';

export interface ServedModel {
  id: string;
  /** Context length the engine reports (`max_model_len`); undefined when it does not say. */
  maxModelLen?: number;
}

/**
 * What the scheduler knows about one engine: health and models from polling,
 * load from its metrics plus the requests this scheduler has open on it.
 */
export class Engine {
  healthy = false;
  models: ServedModel[] = [];
  /** Requests this scheduler has open on the engine right now. */
  inFlight = 0;
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
  endScrape(scraped: EngineLoadMetrics | undefined): void {
    this.scraped = scraped;
    this.inFlightAtScrape = Math.max(this.scrapePeak, this.inFlight);
  }

  /** Counts one more request of ours on the engine. */
  acquire(): void {
    this.inFlight++;
    this.scrapePeak = Math.max(this.scrapePeak, this.inFlight);
  }

  release(): void {
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
