import { createServer, type Server } from 'node:http';
import { createSecretKey } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JwtVerifier } from '../src/auth/jwt';
import { findBodyProblem, nestsDeeperThan } from '../src/edge/json-body';
import { urlProblem } from '../src/webhooks/outbound';

let server: Server;
let verifier: JwtVerifier;
let es: { publicKey: CryptoKey; privateKey: CryptoKey };
let rs: { publicKey: CryptoKey; privateKey: CryptoKey };
let publicJwk: Record<string, unknown>;
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

beforeAll(async () => {
  es = await generateKeyPair('ES256');
  rs = await generateKeyPair('RS256');
  publicJwk = { ...(await exportJWK(es.publicKey)), kid: 'es', alg: 'ES256' };
  const keys = [publicJwk, { ...(await exportJWK(rs.publicKey)), kid: 'rs', alg: 'RS256' }];
  server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  verifier = new JwtVerifier({ jwksUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks`, issuer: 'https://idp.test', audience: 'api', tenantClaim: 'tenant_id' });
});
afterAll(() => server?.close());

const sign = (key: CryptoKey | Uint8Array, { alg = 'ES256', kid = 'es', exp = '5m', iss = 'https://idp.test', aud = 'api', claims = { tenant_id: 't1' } as Record<string, unknown> } = {}) =>
  new SignJWT(claims).setProtectedHeader({ alg, kid }).setSubject('u1').setIssuer(iss).setAudience(aud).setIssuedAt().setExpirationTime(exp).sign(key);

describe('JWT verification against a JWKS', () => {
  it('accepts ES256 and RS256 tokens from the identity provider', async () => {
    expect(await verifier.verify(await sign(es.privateKey))).toEqual({ tenantId: 't1', userId: 'u1', scopes: [] });
    expect(await verifier.verify(await sign(rs.privateKey, { alg: 'RS256', kid: 'rs' }))).toMatchObject({ tenantId: 't1' });
  });

  it('refuses forged, expired, unsigned, HMAC-confused, wrong-issuer/audience and tenantless tokens', async () => {
    const other = await generateKeyPair('ES256');
    const hmacWithPublicKey = await sign(createSecretKey(Buffer.from(JSON.stringify(publicJwk))), { alg: 'HS256' });
    const tokens = [
      await sign(other.privateKey),
      await sign(other.privateKey, { kid: 'unknown' }),
      await sign(es.privateKey, { exp: '-2m' }),
      await sign(es.privateKey, { iss: 'https://evil.test' }),
      await sign(es.privateKey, { aud: 'other' }),
      await sign(es.privateKey, { claims: {} }),
      await sign(es.privateKey, { claims: { tenant_id: 42 } }),
      hmacWithPublicKey,
      `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ tenant_id: 't1', sub: 'u1', iss: 'https://idp.test', aud: 'api', exp: 9e9 })}.`,
      `${b64({ alg: 'ES256', kid: 'es' })}.${b64({ tenant_id: 't1', sub: 'u1', iss: 'https://idp.test', aud: 'api', exp: 9e9 })}.${'A'.repeat(86)}`,
      'a.b.c', '..', `${'x'.repeat(10_000)}.y.z`,
    ];
    for (const token of tokens) expect(await verifier.verify(token)).toBeUndefined();
  });
});

describe('edge guards', () => {
  it('measures nesting without recursion', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(nestsDeeperThan(deep, 64)).toBe(true);
    expect(nestsDeeperThan({ a: [{ b: [1, 2, { c: 'x' }] }] }, 64)).toBe(false);
  });

  it('finds U+0000 in any string or key, however deep, and nothing in clean bodies', () => {
    expect(findBodyProblem({ title: 'ok\u0000' }, 64)).toBe('nul_character');
    expect(findBodyProblem({ messages: [{ role: 'user', content: ['a', 'b\u0000'] }] }, 64)).toBe('nul_character');
    expect(findBodyProblem({ ['k\u0000']: 1 }, 64)).toBe('nul_character');
    expect(findBodyProblem('\u0000', 64)).toBe('nul_character');
    expect(findBodyProblem({ title: 'a\\u0000 is only text', n: 0, list: [null, true, 'é\u0001'] }, 64)).toBeNull();
  });

  it('refuses webhook URLs that name a private or loopback IP unless the operator allows it (names are checked at connect)', () => {
    const policy = { allowedPrivateHosts: [] as string[], allowHttp: false };
    for (const url of ['https://127.0.0.1/x', 'https://10.1.2.3/x', 'https://[::1]/x', 'https://169.254.169.254/latest']) {
      expect(urlProblem(url, policy)).toMatch(/private or loopback/);
    }
    expect(urlProblem('https://127.0.0.1/x', { ...policy, allowedPrivateHosts: ['127.0.0.1'] })).toBeUndefined();
    expect(urlProblem('https://example.com/hook', policy)).toBeUndefined();
  });
});
