import { GrpcError, GrpcStatus, type Logger } from '@ai-platform/platform';
import { shedRequests } from '../metrics';
import type { Lane } from './lanes';

export type RefusalReason = 'deadline' | 'queue_full' | 'shed_batch' | 'expired';

/** The error a request refused by admission control gets, with a `retry-after` hint (seconds); counted and logged. */
export function refusal(request: { model: string; lane: Lane; tenantId: string }, reason: RefusalReason, retryAfterMs: number, targetMs: number, logger: Logger): GrpcError {
  shedRequests.inc({ priority: request.lane, reason });
  const retryAfter = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  const text: Record<RefusalReason, string> = {
    deadline: `cannot start within the ${targetMs} ms time-to-first-token target of ${request.lane} requests: the engines for ${request.model} are saturated`,
    queue_full: `the ${request.lane} queue for ${request.model} is full`,
    shed_batch: `batch request shed: the engines for ${request.model} are saturated by interactive traffic`,
    expired: `waited for an engine for ${request.model} until the ${request.lane} deadline (${targetMs} ms time-to-first-token target)`,
  };
  logger.info({ priority: request.lane, tenant: request.tenantId, model: request.model, reason, retry_after_s: retryAfter }, 'request refused by admission control');
  // Batch shedding is the server protecting itself (503); a miss of an interactive deadline is "too many requests now" (429).
  const code = reason === 'shed_batch' ? GrpcStatus.UNAVAILABLE : GrpcStatus.RESOURCE_EXHAUSTED;
  return new GrpcError(code, `${text[reason]}; retry after ${retryAfter} s`, { 'retry-after': retryAfter });
}
