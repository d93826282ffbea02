import { create, toBinary, toJsonString } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { events } from '@ai-platform/contracts';
import { parseConfig, PoisonMessageError, type ConsumedEvent } from '@ai-platform/platform';
import { PriceTable } from '@ai-platform/pricing';
import { describe, expect, it } from 'vitest';
import { billingConfigSchema } from '../src/config';
import { formatCredits } from '../src/ledger/money';
import { parseUsageEvent } from '../src/usage/usage-event';

const prices = new PriceTable([{ model: 'm', inputMicrosPerMillion: 100_000, cachedInputMicrosPerMillion: 25_000, outputMicrosPerMillion: 400_000 }]);

function message(value: string | Uint8Array, headers: Record<string, string | undefined> = {}): ConsumedEvent {
  return { id: headers.ce_id ?? 'x', topic: 't', partition: 0, offset: '0', value: Buffer.from(value), headers };
}

describe('config', () => {
  it('has the documented defaults and needs DATABASE_URL and KAFKA_BROKERS', () => {
    const config = parseConfig(billingConfigSchema, { DATABASE_URL: 'postgres://x', KAFKA_BROKERS: 'a:1, b:2' });
    expect(config).toMatchObject({
      HTTP_PORT: 8083, GRPC_PORT: 50053, KAFKA_BROKERS: ['a:1', 'b:2'], KAFKA_CONSUMER_GROUP: 'billing-usage',
      SIGNUP_GRANT_CREDITS: 100, RESERVATION_TTL_SECONDS: 600, EXPIRY_SWEEP_INTERVAL_SECONDS: 30,
    });
    expect(config.MODEL_PRICES_JSON).toBeUndefined();
    expect(() => parseConfig(billingConfigSchema, {})).toThrow(/DATABASE_URL: is required[\s\S]*KAFKA_BROKERS: is required/);
    expect(() => parseConfig(billingConfigSchema, { DATABASE_URL: 'x', KAFKA_BROKERS: 'a:1', MODEL_PRICES_JSON: '[{"model":"m"}]' })).toThrow(/MODEL_PRICES_JSON/);
    expect(() => parseConfig(billingConfigSchema, { DATABASE_URL: 'x', KAFKA_BROKERS: ' , ' })).toThrow(/KAFKA_BROKERS/);
  });
});

describe('formatCredits', () => {
  it('formats micros exactly', () => {
    expect(formatCredits(1_234_567n)).toBe('1.234567 credits');
    expect(formatCredits(5n)).toBe('0.000005 credits');
    expect(formatCredits(-2_000_000n)).toBe('-2.000000 credits');
  });
});

describe('parseUsageEvent', () => {
  const event = create(events.UsageEventSchema, {
    eventId: 'e1', tenantId: 't1', model: 'm', reservationId: 'r', inputTokens: 10, cachedInputTokens: 2, outputTokens: 3, costMicros: 7n,
    status: events.UsageStatus.ABORTED, finishedAt: timestampFromDate(new Date('2030-01-02T03:04:05Z')),
  });

  it('decodes protobuf JSON and binary protobuf', () => {
    const fromJson = parseUsageEvent(message(toJsonString(events.UsageEventSchema, event), { ce_id: 'e1', 'content-type': 'application/json' }), prices);
    expect(fromJson).toMatchObject({ eventId: 'e1', tenantId: 't1', inputTokens: 10, cachedInputTokens: 2, outputTokens: 3, reportedCostMicros: 7n, status: 'aborted', reservationRef: 'r' });
    expect(fromJson.occurredAt.toISOString()).toBe('2030-01-02T03:04:05.000Z');
    const fromBinary = parseUsageEvent(message(toBinary(events.UsageEventSchema, event), { ce_id: 'e1', 'content-type': 'application/protobuf' }), prices);
    expect(fromBinary).toEqual(fromJson);
  });

  it('tolerates fields it does not know (the contract may grow)', () => {
    const json = JSON.stringify({ ...JSON.parse(toJsonString(events.UsageEventSchema, event)), someFutureField: 1 });
    expect(parseUsageEvent(message(json, { ce_id: 'e1' }), prices).eventId).toBe('e1');
  });

  it('takes the event id from ce_id when the payload has none, and refuses a mismatch', () => {
    const anonymous = toJsonString(events.UsageEventSchema, create(events.UsageEventSchema, { ...event, eventId: '' }));
    expect(parseUsageEvent(message(anonymous, { ce_id: 'from-header' }), prices).eventId).toBe('from-header');
    expect(() => parseUsageEvent(message(anonymous, {}), prices)).toThrow(/event_id is missing/);
    expect(() => parseUsageEvent(message(toJsonString(events.UsageEventSchema, event), { ce_id: 'other' }), prices)).toThrow(PoisonMessageError);
  });

  it('poisons what cannot be billed', () => {
    const bad = (init: Partial<events.UsageEvent>) => message(toJsonString(events.UsageEventSchema, create(events.UsageEventSchema, { ...event, ...init })), { ce_id: 'e1' });
    expect(() => parseUsageEvent(bad({ model: 'x' }), prices)).toThrow(/unknown model "x"/);
    expect(() => parseUsageEvent(bad({ tenantId: '' }), prices)).toThrow(/tenant_id is missing/);
    expect(() => parseUsageEvent(bad({ outputTokens: 4_000_000_000 }), prices)).toThrow(/output_tokens/);
    expect(() => parseUsageEvent(bad({ cachedInputTokens: 11 }), prices)).toThrow(/exceeds input_tokens/);
    expect(() => parseUsageEvent(message('[]'), prices)).toThrow(/not a valid UsageEvent/);
    expect(() => parseUsageEvent(message(Buffer.from([0xff, 0xff]), { 'content-type': 'application/protobuf' }), prices)).toThrow(PoisonMessageError);
  });
});
