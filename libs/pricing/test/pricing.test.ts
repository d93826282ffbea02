import { describe, expect, it } from 'vitest';
import { costMicros, PriceTable, worstCaseCostMicros, type ModelPrice } from '../src';

const price: ModelPrice = { model: 'm', inputMicrosPerMillion: 100_000, cachedInputMicrosPerMillion: 25_000, outputMicrosPerMillion: 400_000 };

describe('costMicros', () => {
  it('prices input, cached input and output separately and rounds up to a whole micro', () => {
    expect(costMicros(price, { inputTokens: 1_000_000, outputTokens: 0 })).toBe(100_000);
    expect(costMicros(price, { inputTokens: 1_000_000, cachedInputTokens: 1_000_000, outputTokens: 0 })).toBe(25_000);
    expect(costMicros(price, { inputTokens: 0, outputTokens: 1 })).toBe(1); // 0.4 micro rounds up
    expect(costMicros(price, { inputTokens: 10, outputTokens: 20 })).toBe(Math.ceil((10 * 100_000 + 20 * 400_000) / 1_000_000));
  });

  it('rejects negative, fractional and absurd token counts', () => {
    expect(() => costMicros(price, { inputTokens: -1, outputTokens: 0 })).toThrow(RangeError);
    expect(() => costMicros(price, { inputTokens: 1.5, outputTokens: 0 })).toThrow(RangeError);
    expect(() => costMicros(price, { inputTokens: 0, outputTokens: 1e12 })).toThrow(RangeError);
    expect(() => costMicros(price, { inputTokens: 1, cachedInputTokens: 2, outputTokens: 0 })).toThrow(RangeError);
  });

  it('worst case is never below any actual outcome of the same request', () => {
    const worst = worstCaseCostMicros(price, 500, 256);
    for (const output of [0, 1, 100, 256]) expect(costMicros(price, { inputTokens: 500, cachedInputTokens: 100, outputTokens: output })).toBeLessThanOrEqual(worst);
  });
});

describe('PriceTable', () => {
  it('knows the default model and refuses invalid prices', () => {
    expect(new PriceTable().has('gemma-3-270m')).toBe(true);
    expect(() => new PriceTable([{ ...price, outputMicrosPerMillion: -1 }])).toThrow(RangeError);
  });
});
