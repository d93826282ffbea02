import { fromBinary, fromJsonString } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { events } from '@ai-platform/contracts';
import { PoisonMessageError, type ConsumedEvent } from '@ai-platform/platform';
import type { ModelPrice, PriceTable } from '@ai-platform/pricing';
import { MAX_TOKENS_PER_REQUEST } from '../reservations/reservation.service';

export type UsageOutcome = 'completed' | 'aborted' | 'failed' | 'unspecified';

/** A usage event that passed validation: everything settlement needs. */
export interface ValidUsage {
  eventId: string;
  tenantId: string;
  userId: string;
  apiKeyId: string;
  requestId: string;
  conversationId: string;
  /** As carried by the event; may be empty or match no reservation. */
  reservationRef: string;
  model: string;
  price: ModelPrice;
  engineId: string;
  priority: string;
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
  toolCalls: number;
  embeddingTokens: number;
  reportedCostMicros: bigint;
  status: UsageOutcome;
  occurredAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
}

const OUTCOMES: Record<number, UsageOutcome> = {
  [events.UsageStatus.COMPLETED]: 'completed',
  [events.UsageStatus.ABORTED]: 'aborted',
  [events.UsageStatus.FAILED]: 'failed',
  [events.UsageStatus.UNSPECIFIED]: 'unspecified',
};

const MAX_ID_LENGTH = 256;

function validDate(date: Date | undefined): Date | undefined {
  return date && Number.isFinite(date.getTime()) && Math.abs(date.getFullYear()) <= 9999 ? date : undefined;
}

function poison(reason: string): never {
  throw new PoisonMessageError(reason);
}

/**
 * Decodes and validates one message of `usage.events.v1`. Anything that can
 * never be billed correctly is a PoisonMessageError with the reason, so the
 * consumer parks it in the dead-letter topic and goes on. The payload is
 * protobuf JSON (`application/json`, the default) or binary protobuf
 * (`application/protobuf` / `application/x-protobuf`).
 */
export function parseUsageEvent(message: ConsumedEvent, prices: PriceTable): ValidUsage {
  const contentType = (message.headers['content-type'] ?? 'application/json').toLowerCase();
  let event: events.UsageEvent;
  try {
    event = contentType.includes('protobuf')
      ? fromBinary(events.UsageEventSchema, message.value)
      : fromJsonString(events.UsageEventSchema, message.value.toString('utf8'), { ignoreUnknownFields: true });
  } catch (error) {
    poison(`payload is not a valid UsageEvent (${contentType}): ${(error as Error).message}`);
  }

  const headerId = message.headers.ce_id;
  if (event.eventId && headerId && event.eventId !== headerId) poison(`event_id "${event.eventId}" does not match the ce_id header "${headerId}"`);
  const eventId = event.eventId || headerId;
  if (!eventId) poison('event_id is missing (neither the payload nor the ce_id header carries one)');
  if (!event.tenantId) poison('tenant_id is missing');
  for (const [name, value] of [
    ['event_id', eventId], ['tenant_id', event.tenantId], ['user_id', event.userId], ['api_key_id', event.apiKeyId],
    ['request_id', event.requestId], ['reservation_id', event.reservationId], ['conversation_id', event.conversationId],
    ['model', event.model], ['engine_id', event.engineId], ['priority', event.priority],
  ] as const) {
    if (value.length > MAX_ID_LENGTH) poison(`${name} is longer than ${MAX_ID_LENGTH} characters`);
  }
  if (!event.model) poison('model is missing');
  const price = prices.get(event.model);
  if (!price) poison(`unknown model "${event.model}": it has no price, so its usage cannot be billed`);
  for (const [name, value] of [['input_tokens', event.inputTokens], ['cached_input_tokens', event.cachedInputTokens], ['output_tokens', event.outputTokens], ['tool_calls', event.toolCalls], ['embedding_tokens', event.embeddingTokens]] as const) {
    if (!Number.isSafeInteger(value) || value < 0 || value > MAX_TOKENS_PER_REQUEST) poison(`${name} must be an integer between 0 and ${MAX_TOKENS_PER_REQUEST}, got ${value}`);
  }
  if (event.cachedInputTokens > event.inputTokens) poison(`cached_input_tokens (${event.cachedInputTokens}) exceeds input_tokens (${event.inputTokens})`);

  const startedAt = validDate(event.startedAt ? timestampDate(event.startedAt) : undefined);
  const finishedAt = validDate(event.finishedAt ? timestampDate(event.finishedAt) : undefined);
  const headerTime = validDate(message.headers.ce_time ? new Date(message.headers.ce_time) : undefined);
  const occurredAt = finishedAt ?? startedAt ?? headerTime ?? new Date();

  return {
    eventId,
    tenantId: event.tenantId,
    userId: event.userId,
    apiKeyId: event.apiKeyId,
    requestId: event.requestId,
    conversationId: event.conversationId,
    reservationRef: event.reservationId,
    model: event.model,
    price,
    engineId: event.engineId,
    priority: event.priority,
    inputTokens: event.inputTokens,
    cachedInputTokens: event.cachedInputTokens,
    outputTokens: event.outputTokens,
    toolCalls: event.toolCalls,
    embeddingTokens: event.embeddingTokens,
    reportedCostMicros: event.costMicros,
    status: OUTCOMES[event.status] ?? 'unspecified',
    occurredAt,
    startedAt,
    finishedAt,
  };
}
