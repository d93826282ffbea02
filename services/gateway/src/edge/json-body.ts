import { ApiError } from '@ai-platform/platform';
import type { FastifyRequest } from 'fastify';

/** Deepest array/object nesting a request body may have; real API bodies stay under 10. */
export const MAX_JSON_DEPTH = 64;

export type BodyProblem = 'too_deep' | 'nul_character';

/**
 * The first structural problem in a parsed JSON body, or null. Iterative, so a
 * hostile body cannot overflow the stack. U+0000 is refused in keys and
 * strings because no text column in Postgres can hold it: accepting it would
 * mean a 500 or a silently lost record further down the chain.
 */
export function findBodyProblem(value: unknown, depthLimit: number): BodyProblem | null {
  if (typeof value === 'string') return value.includes('\0') ? 'nul_character' : null;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== 'object' || item === null) continue;
    if (depth + 1 > depthLimit) return 'too_deep';
    if (Array.isArray(item)) {
      for (const child of item) {
        if (typeof child === 'string') {
          if (child.includes('\0')) return 'nul_character';
        } else if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
      }
      continue;
    }
    for (const key in item) {
      if (key.includes('\0')) return 'nul_character';
      const child = (item as Record<string, unknown>)[key];
      if (typeof child === 'string') {
        if (child.includes('\0')) return 'nul_character';
      } else if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return null;
}

/** True when `value` nests arrays/objects deeper than `limit`. */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  return findBodyProblem(value, limit) === 'too_deep';
}

/**
 * Bodies are JSON only (text/plain and form bodies get 415), no deeper than
 * MAX_JSON_DEPTH and free of U+0000, refused before anything recursive
 * (JSON.stringify in the idempotency fingerprint, loggers) walks them.
 */
export function checkJsonBody(request: FastifyRequest): void {
  if (request.body === undefined || request.body === null) return;
  const type = request.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new ApiError(415, 'invalid_request_error', 'unsupported content type; send application/json', 'fst_err_ctp_invalid_media_type');
  }
  const problem = findBodyProblem(request.body, MAX_JSON_DEPTH);
  if (problem === 'too_deep') {
    throw ApiError.badRequest(`request body nests more than ${MAX_JSON_DEPTH} levels deep`, null, 'body_too_deep');
  }
  if (problem === 'nul_character') {
    throw ApiError.badRequest('request body contains the NUL character (U+0000), which no text field accepts', null, 'invalid_character');
  }
}
