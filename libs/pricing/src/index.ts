/**
 * Model prices and cost arithmetic. Money is integer micro-units (1 credit =
 * 1,000,000 micros); prices are micros per million tokens, so every cost is an
 * exact integer rounded up to the next micro.
 */
export const MICROS_PER_CREDIT = 1_000_000;

export interface ModelPrice {
  model: string;
  inputMicrosPerMillion: number;
  cachedInputMicrosPerMillion: number;
  outputMicrosPerMillion: number;
  /** Price of one tool call (micros); 0 when unset. */
  toolCallMicros?: number;
  /** Embedding tokens (micros per million); 0 when unset. */
  embeddingMicrosPerMillion?: number;
  /** Version of the price in a versioned price table (billing's `price_versions.id`). */
  version?: number;
}

export interface TokenCounts {
  inputTokens: number;
  cachedInputTokens?: number;
  outputTokens: number;
  toolCalls?: number;
  embeddingTokens?: number;
}

/** Basis points: 10,000 bps = 100%. */
export const BPS = 10_000;

/** List prices of the models the platform serves out of the box. */
export const DEFAULT_PRICES: readonly ModelPrice[] = [
  { model: 'gemma-3-270m', inputMicrosPerMillion: 100_000, cachedInputMicrosPerMillion: 25_000, outputMicrosPerMillion: 400_000 },
  // An embedding call is billed as embedding tokens. Its hold is taken on input tokens at the
  // same rate, so the input price must not be below the embedding price.
  { model: 'all-minilm-l6-v2', inputMicrosPerMillion: 20_000, cachedInputMicrosPerMillion: 20_000, outputMicrosPerMillion: 0, embeddingMicrosPerMillion: 20_000 },
];

export class PriceTable {
  private readonly byModel: Map<string, ModelPrice>;

  constructor(prices: readonly ModelPrice[] = DEFAULT_PRICES) {
    for (const price of prices) assertValidPrice(price);
    this.byModel = new Map(prices.map((price) => [price.model, price]));
  }

  get(model: string): ModelPrice | undefined {
    return this.byModel.get(model);
  }

  has(model: string): boolean {
    return this.byModel.has(model);
  }

  models(): string[] {
    return [...this.byModel.keys()];
  }

  all(): ModelPrice[] {
    return [...this.byModel.values()];
  }

  /** Replaces the prices (a newer version of the table was loaded). */
  replace(prices: readonly ModelPrice[]): void {
    for (const price of prices) assertValidPrice(price);
    this.byModel.clear();
    for (const price of prices) this.byModel.set(price.model, price);
  }
}

function assertValidPrice(price: ModelPrice) {
  for (const value of [price.inputMicrosPerMillion, price.cachedInputMicrosPerMillion, price.outputMicrosPerMillion, price.toolCallMicros ?? 0, price.embeddingMicrosPerMillion ?? 0]) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`price of ${price.model} must be a non-negative integer`);
  }
}

function assertTokenCount(name: string, value: number) {
  if (!Number.isSafeInteger(value) || value < 0 || value > 100_000_000) throw new RangeError(`${name} must be an integer between 0 and 100000000`);
}

/** Exact cost in micros, rounded up: cached input is priced separately from the rest of the input. */
export function costMicros(price: ModelPrice, tokens: TokenCounts): number {
  const cached = tokens.cachedInputTokens ?? 0;
  assertTokenCount('inputTokens', tokens.inputTokens);
  assertTokenCount('cachedInputTokens', cached);
  assertTokenCount('outputTokens', tokens.outputTokens);
  assertTokenCount('toolCalls', tokens.toolCalls ?? 0);
  assertTokenCount('embeddingTokens', tokens.embeddingTokens ?? 0);
  if (cached > tokens.inputTokens) throw new RangeError('cachedInputTokens cannot exceed inputTokens');
  const scaled =
    BigInt(tokens.inputTokens - cached) * BigInt(price.inputMicrosPerMillion) +
    BigInt(cached) * BigInt(price.cachedInputMicrosPerMillion) +
    BigInt(tokens.outputTokens) * BigInt(price.outputMicrosPerMillion) +
    BigInt(tokens.embeddingTokens ?? 0) * BigInt(price.embeddingMicrosPerMillion ?? 0) +
    BigInt(tokens.toolCalls ?? 0) * BigInt(price.toolCallMicros ?? 0) * 1_000_000n;
  return Number((scaled + 999_999n) / 1_000_000n);
}

/** A tenant's markup on a cost, rounded up to the next micro: cost × (1 + bps / 10,000). */
export function withMarkup(costMicros: number, markupBps: number): number {
  if (!Number.isSafeInteger(markupBps) || markupBps < 0) throw new RangeError('markupBps must be a non-negative integer');
  if (markupBps === 0) return costMicros;
  return Number((BigInt(costMicros) * BigInt(BPS + markupBps) + BigInt(BPS - 1)) / BigInt(BPS));
}

/** Worst case of a request before it runs: all input uncached, every allowed output token used. */
export function worstCaseCostMicros(price: ModelPrice, inputTokens: number, maxOutputTokens: number): number {
  return costMicros(price, { inputTokens, outputTokens: maxOutputTokens });
}
