import type { JWTPayload } from 'jose' with { 'resolution-mode': 'import' };

// jose is ESM-only; this CommonJS build loads it with a dynamic import.
type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });
const loadJose = (): Promise<Jose> => import('jose');

export interface JwtSettings {
  jwksUrl: string;
  issuer: string;
  audience: string;
  tenantClaim: string;
}

export interface JwtIdentity {
  tenantId: string;
  userId: string;
  scopes: string[];
}

const ALGORITHMS = ['RS256', 'ES256'];

/**
 * Verifies bearer JWTs against the identity provider's JWKS (fetched and
 * cached by jose, refreshed when an unknown `kid` appears). Only RS256 and
 * ES256 are accepted, so `alg: none` and HMAC-with-the-public-key forgeries fail.
 */
export class JwtVerifier {
  private readonly ready: Promise<{ jose: Jose; jwks: ReturnType<Jose['createRemoteJWKSet']> }>;

  constructor(private readonly settings: JwtSettings) {
    this.ready = loadJose().then((jose) => ({
      jose,
      jwks: jose.createRemoteJWKSet(new URL(settings.jwksUrl), { timeoutDuration: 3_000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 }),
    }));
  }

  /** The identity in a valid token; undefined for any invalid one (bad signature, expired, wrong issuer or audience). */
  async verify(token: string): Promise<JwtIdentity | undefined> {
    const { jose, jwks } = await this.ready;
    let payload: JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(token, jwks, { issuer: this.settings.issuer, audience: this.settings.audience, algorithms: ALGORITHMS, clockTolerance: 5 }));
    } catch (error) {
      if (error instanceof jose.errors.JOSEError || error instanceof TypeError) return undefined;
      throw error;
    }
    const tenantId = payload[this.settings.tenantClaim];
    if (typeof tenantId !== 'string' || !tenantId || typeof payload.sub !== 'string' || !payload.sub) return undefined;
    const scope = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
    return { tenantId, userId: payload.sub, scopes: scope };
  }
}

/** Three base64url segments: worth trying as a JWT. */
export function looksLikeJwt(value: string): boolean {
  return /^[\w-]+\.[\w-]*\.[\w-]*$/.test(value);
}
