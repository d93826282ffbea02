import type { FastifyRequest } from 'fastify';
import { ApiError } from '@ai-platform/platform';
import type { IdentityStore } from './identity.store';
import type { Principal } from './principal';

/** Reads `Authorization: Bearer <key>` and resolves it, or fails with OpenAI's 401. */
export async function authenticate(request: FastifyRequest, identities: IdentityStore): Promise<Principal> {
  const header = request.headers.authorization;
  if (typeof header !== 'string' || header.length === 0) {
    throw ApiError.unauthorized('You didn\'t provide an API key. Send it as "Authorization: Bearer <key>".', 'missing_api_key');
  }
  const match = /^Bearer\s+(\S{1,256})$/i.exec(header);
  const principal = match ? await identities.authenticate(match[1]!) : undefined;
  if (!principal) throw ApiError.unauthorized('Incorrect API key provided.', 'invalid_api_key');
  return principal;
}
