import type { FastifyRequest } from 'fastify';
import { ApiError } from '@ai-platform/platform';
import type { Principal } from './principal';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the gateway's auth hook on every /v1 and /api route. */
    principal?: Principal;
  }
}

/**
 * The caller resolved by the auth hook (see edge/hooks.ts). Controllers call
 * this; a route the hook does not cover gets OpenAI's 401.
 */
export async function authenticate(request: FastifyRequest, _identities?: unknown): Promise<Principal> {
  if (!request.principal) throw ApiError.unauthorized('You didn\'t provide an API key. Send it as "Authorization: Bearer <key>".', 'missing_api_key');
  return request.principal;
}
