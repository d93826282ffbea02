import type { orchestrator } from '@ai-platform/contracts';
import { ApiError, apiErrorFromGrpc, isServiceError, type Logger } from '@ai-platform/platform';
import type { UpstreamClients } from '../upstream/upstream.clients';

/** Maps any upstream failure to the public error it should become. */
export function toPublicError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (isServiceError(error)) return apiErrorFromGrpc(error.code, error.details);
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
 * proper HTTP status instead of a broken stream.
 */
export async function startTurn(stream: AsyncIterable<orchestrator.ChatResponse>): Promise<TurnStart> {
  const events = stream[Symbol.asyncIterator]();
  const first = await events.next();
  if (first.done || first.value.event.case !== 'started') {
    throw new ApiError(502, 'server_error', 'orchestrator did not start the turn', 'bad_upstream');
  }
  return { conversationId: first.value.event.value.conversationId, events };
}

/** Frees a hold that no model call will settle; failures are logged, the hold then expires. */
export async function releaseHold(upstream: UpstreamClients, reservationId: string, reason: string, logger: Logger): Promise<void> {
  try {
    await upstream.billing.release({ reservationId, reason }, { timeoutMs: 2_000 });
  } catch (error) {
    logger.warn({ err: error, reservation_id: reservationId }, 'could not release reservation; it will expire');
  }
}
