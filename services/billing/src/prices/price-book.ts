import { Inject, Injectable } from '@nestjs/common';
import { LOGGER, type Logger, type Pool } from '@ai-platform/platform';
import type { ModelPrice, PriceTable } from '@ai-platform/pricing';
import { PG_POOL, PRICE_TABLE } from '../infra/tokens';

interface PriceRow {
  id: string;
  model: string;
  input_micros_per_million: string;
  cached_input_micros_per_million: string;
  output_micros_per_million: string;
  tool_call_micros: string;
  embedding_micros_per_million: string;
}

const toPrice = (row: PriceRow): ModelPrice => ({
  model: row.model,
  inputMicrosPerMillion: Number(row.input_micros_per_million),
  cachedInputMicrosPerMillion: Number(row.cached_input_micros_per_million),
  outputMicrosPerMillion: Number(row.output_micros_per_million),
  toolCallMicros: Number(row.tool_call_micros),
  embeddingMicrosPerMillion: Number(row.embedding_micros_per_million),
  version: Number(row.id),
});

const same = (a: ModelPrice, b: ModelPrice) =>
  a.inputMicrosPerMillion === b.inputMicrosPerMillion &&
  a.cachedInputMicrosPerMillion === b.cachedInputMicrosPerMillion &&
  a.outputMicrosPerMillion === b.outputMicrosPerMillion &&
  (a.toolCallMicros ?? 0) === (b.toolCallMicros ?? 0) &&
  (a.embeddingMicrosPerMillion ?? 0) === (b.embeddingMicrosPerMillion ?? 0);

/**
 * The versioned price table in Postgres (`billing.price_versions`, append-only)
 * and its in-memory copy (PRICE_TABLE) that Reserve and settlement read. A
 * price change inserts a new version; holds and usage records keep the version
 * and unit prices they were computed with, so history is never rewritten.
 * At start the configured prices (MODEL_PRICES_JSON or the built-in list) are
 * written as new versions where they differ from the latest one.
 */
@Injectable()
export class PriceBook {
  private timer?: NodeJS.Timeout;

  constructor(
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(PRICE_TABLE) private readonly table: PriceTable,
  ) {}

  /** Writes the configured prices as versions where they changed, then loads the latest versions. */
  async seed(): Promise<void> {
    const configured = this.table.all();
    const latest = await this.latest();
    for (const price of configured) {
      const current = latest.get(price.model);
      if (!current || !same(current, price)) await this.insert(price);
    }
    await this.reload();
  }

  async setPrice(price: ModelPrice): Promise<number> {
    const version = await this.insert(price);
    await this.reload();
    this.logger.info({ model: price.model, version }, 'new price version');
    return version;
  }

  async reload(): Promise<void> {
    this.table.replace([...(await this.latest()).values()]);
  }

  /** Picks up versions written by other replicas. */
  startRefresh(intervalMs: number): void {
    this.timer = setInterval(() => void this.reload().catch((error) => this.logger.warn({ err: error }, 'price reload failed')), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async latest(): Promise<Map<string, ModelPrice>> {
    const { rows } = await this.pool.query<PriceRow>(`SELECT DISTINCT ON (model) * FROM billing.price_versions ORDER BY model, id DESC`);
    return new Map(rows.map((row) => [row.model, toPrice(row)]));
  }

  private async insert(price: ModelPrice): Promise<number> {
    const { rows } = await this.pool.query<{ id: string }>(
      `INSERT INTO billing.price_versions (model, input_micros_per_million, cached_input_micros_per_million, output_micros_per_million, tool_call_micros, embedding_micros_per_million)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
      [price.model, price.inputMicrosPerMillion, price.cachedInputMicrosPerMillion, price.outputMicrosPerMillion, price.toolCallMicros ?? 0, price.embeddingMicrosPerMillion ?? 0],
    );
    return Number(rows[0]!.id);
  }
}
