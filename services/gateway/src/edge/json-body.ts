import { ApiError } from '@ai-platform/platform';
import type { FastifyRequest } from 'fastify';

/** Deepest array/object nesting a request body may have; real API bodies stay under 10. */
export const MAX_JSON_DEPTH = 64;

/** True when `value` nests arrays/objects deeper than `limit`. Iterative, so a hostile body cannot overflow the stack. */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== 'object' || item === null) continue;
    if (depth + 1 > limit) return true;
    for (const child of Array.isArray(item) ? item : Object.values(item)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/**
 * Bodies are JSON only (text/plain and form bodies get 415), and no deeper
 * than MAX_JSON_DEPTH, refused before anything recursive (JSON.stringify in
 * the idempotency fingerprint, loggers) walks them.
 */
export function checkJsonBody(request: FastifyRequest): void {
  if (request.body === undefined || request.body === null) return;
  const type = request.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new ApiError(415, 'invalid_request_error', 'unsupported content type; send application/json', 'fst_err_ctp_invalid_media_type');
  }
  if (nestsDeeperThan(request.body, MAX_JSON_DEPTH)) {
    throw ApiError.badRequest(`request body nests more than ${MAX_JSON_DEPTH} levels deep`, null, 'body_too_deep');
  }
}
