import type { z } from 'zod';
import { ApiError } from '@ai-platform/platform';

/** Parses with `schema`, turning the first issue into a 400 that names the field (one error shape everywhere). */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown, what = 'request body'): z.infer<S> {
  if (what === 'request body' && (typeof body !== 'object' || body === null || Array.isArray(body))) {
    throw ApiError.badRequest('request body must be a JSON object');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const prefix = issue.path.length ? `${issue.path.join('.')}.` : '';
    throw ApiError.badRequest(`Unrecognized request argument supplied: ${prefix}${issue.keys.join(', ')}`, issue.keys[0] ?? null, 'unknown_parameter');
  }
  const param = issue.path.join('.') || null;
  throw ApiError.badRequest(`Invalid value for '${param ?? what}': ${issue.message}`, param, 'invalid_value');
}
