import type { orchestrator } from '@ai-platform/contracts';
import { ApiError, apiErrorFromGrpc, GrpcStatus, isServiceError, type Logger } from '@ai-platform/platform';
import type { Principal } from '../auth/principal';
import type { UpstreamClients } from '../upstream/upstream.clients';

/** Maps any upstream failure to the public error it should become. */
export function toPublicError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (isServiceError(error)) {
    const mapped = apiErrorFromGrpc(error.code, error.details);
    // The scheduler's own estimate of when to come back (admission control) beats the default.
    const retryAfter = (error as { metadata?: { get?: (key: string) => unknown[] } }).metadata?.get?.('retry-after')[0];
    if (retryAfter !== undefined && /^\d{1,5}$/.test(String(retryAfter)) && 'retry-after' in mapped.headers) mapped.headers['retry-after'] = String(retryAfter);
    return mapped;
  }
  return new ApiError(500, 'server_error', 'internal error', 'internal_error');
}

export interface TurnStart {
  conversationId: string;
  /** The rest of the stream, after the `started` event. */
  events: AsyncIterator<orchestrator.ChatResponse>;
}

/**
 * Opens the orchestrator stream and waits for its first event, so that errors
 * raised before generation (unknown conversation, bad input) still become a
 * proper HTTP status instead of a broken stream. Then it waits up to
 * `firstEventWaitMs` for the event after that (the first token, or the end),
 * so that a model call that fails before any token (no engine serves the model,
 * every attempt failed, the queue shed it) also gets a status: 503 or 429 with
 * Retry-After, which clients retry, and which an Idempotency-Key does not
 * store as the key's answer. Past the wait the stream is committed and a later
 * failure arrives as an error event.
 */
export async function startTurn(stream: AsyncIterable<orchestrator.ChatResponse>, firstEventWaitMs = 0): Promise<TurnStart> {
  const events = stream[Symbol.asyncIterator]();
  const first = await events.next();
  if (first.done || first.value.event.case !== 'started') {
    throw new ApiError(502, 'server_error', 'orchestrator did not start the turn', 'bad_upstream');
  }
  return { conversationId: first.value.event.value.conversationId, events: await awaitFirstEvent(events, firstEventWaitMs) };
}

type ChatEvents = AsyncIterator<orchestrator.ChatResponse>;

/** `events` with its next event already asked for; rejects if that event is a failure that came within `waitMs`. */
async function awaitFirstEvent(events: ChatEvents, waitMs: number): Promise<ChatEvents> {
  if (waitMs <= 0) return events;
  let pending: Promise<IteratorResult<orchestrator.ChatResponse>> | undefined = events.next();
  // Past the wait nobody may be listening yet: the failure is handled by whoever reads the event.
  pending.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([pending, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
  } finally {
    clearTimeout(timer);
  }
  return {
    next: () => {
      const next = pending ?? events.next();
      pending = undefined;
      return next;
    },
    return: (value) => events.return?.(value) ?? Promise.resolve({ done: true, value: undefined }),
  };
}

/** Holds the worst case with billing; a refusal (not enough credit, a budget) is OpenAI's 402. */
export async function takeHold(
  upstream: UpstreamClients, principal: Principal, requestId: string, model: string, inputTokens: number, maxOutputTokens: number,
): Promise<string> {
  try {
    const hold = await upstream.billing.reserve({
      tenantId: principal.tenantId, userId: principal.userId, apiKeyId: principal.apiKeyId, requestId, model, inputTokens, maxOutputTokens,
    });
    return hold.reservationId;
  } catch (error) {
    if (isServiceError(error) && error.code === GrpcStatus.FAILED_PRECONDITION) {
      throw new ApiError(402, 'insufficient_quota', error.details, 'insufficient_quota');
    }
    throw toPublicError(error);
  }
}

/** Frees a hold that no model call will settle; failures are logged, the hold then expires. */
export async function releaseHold(upstream: UpstreamClients, reservationId: string, reason: string, logger: Logger): Promise<void> {
  try {
    await upstream.billing.release({ reservationId, reason }, { timeoutMs: 2_000 });
  } catch (error) {
    logger.warn({ err: error, reservation_id: reservationId }, 'could not release reservation; it will expire');
  }
}
