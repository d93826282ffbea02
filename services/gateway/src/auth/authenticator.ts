import { Inject, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { ApiError, CONFIG } from '@ai-platform/platform';
import type { GatewayConfig } from '../config';
import { effectiveTier } from '../limits/limit-config';
import { IdentityStore } from './identity.store';
import { JwtVerifier, looksLikeJwt } from './jwt';
import { hasScope, type Principal, type Scope } from './principal';

/** Which scope a public path needs. */
export function scopeFor(path: string): Scope | undefined {
  if (path === '/v1/chat/completions' || path === '/api/chat') return 'chat';
  if (path.startsWith('/v1/models')) return 'models';
  if (path === '/v1/embeddings') return 'embeddings';
  if (path.startsWith('/api/conversations')) return 'conversations';
  if (path === '/api/usage') return 'usage';
  if (path.startsWith('/api/jobs')) return 'jobs';
  if (path.startsWith('/api/webhooks')) return 'webhooks';
  return undefined;
}

/**
 * Resolves `Authorization: Bearer <api key | JWT>` to a principal. Nothing
 * positive is cached: every request reads the key row, so a revoked key stops
 * working on every replica at its next request.
 */
@Injectable()
export class Authenticator {
  private readonly jwt?: JwtVerifier;

  constructor(
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(IdentityStore) private readonly identities: IdentityStore,
  ) {
    if (config.JWT_JWKS_URL && config.JWT_ISSUER && config.JWT_AUDIENCE) {
      this.jwt = new JwtVerifier({ jwksUrl: config.JWT_JWKS_URL, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE, tenantClaim: config.JWT_TENANT_CLAIM });
    }
  }

  async authenticate(request: FastifyRequest): Promise<Principal> {
    const header = request.headers.authorization;
    if (typeof header !== 'string' || header.length === 0) {
      throw ApiError.unauthorized('You didn\'t provide an API key. Send it as "Authorization: Bearer <key>".', 'missing_api_key');
    }
    const match = /^Bearer\s+(\S{1,4096})$/i.exec(header);
    const token = match?.[1];
    if (!token) throw ApiError.unauthorized('Incorrect API key provided.', 'invalid_api_key');
    if (token.startsWith('pk_')) {
      const owner = await this.identities.authenticate(token);
      if (!owner) throw ApiError.unauthorized('Incorrect API key provided.', 'invalid_api_key');
      return {
        tenantId: owner.tenantId, userId: owner.userId, apiKeyId: owner.apiKeyId, scopes: owner.scopes, method: 'api_key',
        tier: effectiveTier(this.config.RATE_LIMIT_TIERS, owner.tierName, owner.limits),
      };
    }
    if (this.jwt && looksLikeJwt(token)) {
      const identity = await this.jwt.verify(token);
      const tenant = identity ? await this.identities.tenant(identity.tenantId) : undefined;
      if (!identity || !tenant) throw ApiError.unauthorized('Invalid or expired token.', 'invalid_token');
      return {
        tenantId: tenant.id, userId: identity.userId, apiKeyId: `jwt:${identity.userId}`.slice(0, 128), scopes: identity.scopes, method: 'jwt',
        tier: effectiveTier(this.config.RATE_LIMIT_TIERS, tenant.tier, tenant.limits),
      };
    }
    throw ApiError.unauthorized('Incorrect API key provided.', 'invalid_api_key');
  }

  /** Authenticates and checks the path's scope; sets `request.principal`. */
  async admit(request: FastifyRequest, path: string): Promise<Principal> {
    const principal = await this.authenticate(request);
    const scope = scopeFor(path);
    if (scope && !hasScope(principal, scope)) {
      throw new ApiError(403, 'permission_error', `This credential lacks the "${scope}" scope.`, 'insufficient_scope');
    }
    request.principal = principal;
    return principal;
  }
}
