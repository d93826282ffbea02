import { createServer, type Server } from 'node:http';
import { createHmac } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema, type UIMessage } from 'ai';
import { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL, TestStack, waitFor } from './support/stack';

const ADMIN = 'admin-token-for-e2e-0123456789abcdef';
const TIERS = JSON.stringify({
  default: { key: { requests_per_minute: 1000, tokens_per_minute: 1_000_000 } },
  tight: { key: { requests_per_minute: 2 } },
});

let stack: TestStack;
let db: Pool;
let jwks: Server;
let hooks: Server;
const received: Array<{ headers: Record<string, string | string[] | undefined>; body: string }> = [];
let hookStatus = 200;
let keys: Awaited<ReturnType<typeof generateKeyPair>>;

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

async function admin(method: string, path: string, body?: unknown) {
  const response = await fetch(`${stack.gatewayUrl}/admin${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

/** A tenant with one user and a key, made through the admin API. */
async function tenant(options: { tier?: string; scopes?: string[] } = {}) {
  const t = await admin('POST', '/tenants', { name: 'e2e', tier: options.tier });
  const u = await admin('POST', `/tenants/${t.body.id}/users`, {});
  const k = await admin('POST', `/tenants/${t.body.id}/keys`, { user_id: u.body.id, scopes: options.scopes });
  return { tenantId: t.body.id as string, userId: u.body.id as string, key: k.body.key as string, keyId: k.body.id as string };
}

function api(key: string, path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  return fetch(`${stack.gatewayUrl}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: { authorization: `Bearer ${key}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...init.headers },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
}

const chat = (content: string, extra: Record<string, unknown> = {}) => ({ model: MODEL, messages: [{ role: 'user', content }], max_tokens: 6, temperature: 0, ...extra });

beforeAll(async () => {
  keys = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
  const jwksPort = await listen(jwks);
  hooks = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(hookStatus).end();
    });
  });
  await listen(hooks);
  stack = await TestStack.start({
    gateway: {
      ADMIN_TOKEN: ADMIN, RATE_LIMIT_TIERS: TIERS, JWT_JWKS_URL: `http://127.0.0.1:${jwksPort}/jwks`, JWT_ISSUER: 'https://idp.test', JWT_AUDIENCE: 'ai-platform',
      WEBHOOK_ALLOWED_PRIVATE_HOSTS: '127.0.0.1', WEBHOOK_ALLOW_HTTP: 'true', WEBHOOK_BACKOFF_MS: '50', WEBHOOK_MAX_ATTEMPTS: '3', CORS_ORIGINS: 'https://app.test',
    },
  });
  db = new Pool({ connectionString: process.env.DATABASE_URL });
  const probe = await tenant();
  await stack.waitUntilServing(probe.key);
});

afterAll(async () => {
  await db?.end();
  await stack?.stop();
  jwks?.close();
  hooks?.close();
});

describe('tenants, keys and JWTs', () => {
  it('guards the admin API and enforces scopes, expiry and immediate revocation', async () => {
    expect((await fetch(`${stack.gatewayUrl}/admin/tenants`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', authorization: 'Bearer wrong' } })).status).toBe(401);
    const limited = await tenant({ scopes: ['models'] });
    const first = await api(limited.key, '/v1/models');
    if (first.status !== 200) console.log(limited, await first.text());
    expect(first.status).toBe(200);
    const denied = await api(limited.key, '/v1/chat/completions', { body: chat('hi') });
    expect(denied.status).toBe(403);
    expect((await denied.json()).error.code).toBe('insufficient_scope');
    expect((await admin('DELETE', `/tenants/${limited.tenantId}/keys/${limited.keyId}`)).status).toBe(200);
    expect((await api(limited.key, '/v1/models')).status).toBe(401);
    const soon = await admin('POST', `/tenants/${limited.tenantId}/keys`, { user_id: limited.userId, expires_at: new Date(Date.now() + 1500).toISOString() });
    expect((await api(soon.body.key, '/v1/models')).status).toBe(200);
    await waitFor(async () => ((await api(soon.body.key, '/v1/models')).status === 401 ? true : undefined), 'the key to expire', 10_000);
  });

  it('accepts an ES256 JWT from the JWKS and refuses forged, expired, wrong-audience and alg:none tokens', async () => {
    const t = await tenant();
    const sign = (claims: Record<string, unknown>, key = keys.privateKey, exp = '5m', aud = 'ai-platform') =>
      new SignJWT({ tenant_id: t.tenantId, ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setSubject('jwt-user').setIssuer('https://idp.test').setAudience(aud).setIssuedAt().setExpirationTime(exp).sign(key);
    expect((await api(await sign({}), '/v1/models')).status).toBe(200);
    const other = await generateKeyPair('ES256');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify({ tenant_id: t.tenantId, sub: 'x', iss: 'https://idp.test', aud: 'ai-platform', exp: 9e9 })).toString('base64url')}.`;
    for (const token of [await sign({}, other.privateKey), await sign({}, keys.privateKey, '-1m'), await sign({}, keys.privateKey, '5m', 'other'), none, await sign({ tenant_id: 'tenant_nonexistent' })]) {
      const response = await api(token, '/v1/models');
      expect(response.status).toBe(401);
      expect((await response.json()).error.type).toBe('authentication_error');
    }
  });
});

describe('limits and idempotency', () => {
  it('answers over-limit requests with 429, Retry-After and x-ratelimit headers', async () => {
    const t = await tenant({ tier: 'tight' });
    const statuses = [];
    let last: Response | undefined;
    for (let i = 0; i < 3; i++) {
      last = await api(t.key, '/v1/chat/completions', { body: chat(`Say ${i}.`) });
      statuses.push(last.status);
      if (last.status === 200) expect(last.headers.get('x-ratelimit-limit-requests')).toBe('2');
    }
    expect(statuses).toEqual([200, 200, 429]);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(last!.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect((await last!.json()).error.type).toBe('rate_limit_error');
  });

  it('replays a repeated key (JSON and stream) with one usage record, 409 while running, 422 for another body', async () => {
    const t = await tenant();
    const body = chat('Count to three.');
    const [a, b] = await Promise.all([
      api(t.key, '/v1/chat/completions', { body, headers: { 'idempotency-key': 'idem-1' } }),
      new Promise<Response>((resolve) => setTimeout(() => resolve(api(t.key, '/v1/chat/completions', { body, headers: { 'idempotency-key': 'idem-1' } })), 50)),
    ]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(409);
    const first = await a.json();
    const replay = await api(t.key, '/v1/chat/completions', { body, headers: { 'idempotency-key': 'idem-1' } });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(await replay.json()).toEqual(first);
    expect((await api(t.key, '/v1/chat/completions', { body: chat('Other.'), headers: { 'idempotency-key': 'idem-1' } })).status).toBe(422);

    const streamBody = chat('Hello.', { stream: true });
    const streamed = await (await api(t.key, '/v1/chat/completions', { body: streamBody, headers: { 'idempotency-key': 'idem-2' } })).text();
    const again = await api(t.key, '/v1/chat/completions', { body: streamBody, headers: { 'idempotency-key': 'idem-2' } });
    expect(again.headers.get('content-type')).toContain('text/event-stream');
    expect(await again.text()).toBe(streamed);

    const records = await waitFor(async () => {
      const { rows } = await db.query(`SELECT count(*)::int AS n FROM billing.usage_records WHERE tenant_id = $1`, [t.tenantId]);
      return rows[0].n >= 2 ? rows[0].n : undefined;
    }, 'usage records');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { rows } = await db.query(`SELECT count(*)::int AS n FROM billing.usage_records WHERE tenant_id = $1`, [t.tenantId]);
    expect(records).toBe(2);
    expect(rows[0].n).toBe(2);
  });
});

describe('product APIs', () => {
  it('streams /api/chat in the AI SDK UI message protocol, read by the ai package', async () => {
    const t = await tenant();
    const response = await api(t.key, '/api/chat', { body: { id: 'chat-1', messages: [{ id: 'm1', role: 'user', parts: [{ type: 'text', text: 'Say hi.' }] }], max_tokens: 6 } });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-vercel-ai-ui-message-stream')).toBe('v1');
    const chunks = parseJsonEventStream({ stream: response.body!, schema: uiMessageChunkSchema }).pipeThrough(new TransformStream({
      transform(part, controller) {
        if (!part.success) throw part.error;
        controller.enqueue(part.value);
      },
    }));
    let message: UIMessage | undefined;
    for await (const m of readUIMessageStream({ stream: chunks, terminateOnError: true })) message = m;
    const text = message!.parts.filter((p) => p.type === 'text').map((p) => (p as { text: string }).text).join('');
    expect(text.length).toBeGreaterThan(0);
    const meta = message!.metadata as { conversationId: string; usage: { outputTokens: number } };
    expect(meta.usage.outputTokens).toBeGreaterThan(0);

    // The conversation it stored is the caller's, and only the caller's.
    const list = await (await api(t.key, '/api/conversations')).json();
    expect(list.data.map((c: { id: string }) => c.id)).toContain(meta.conversationId);
    const read = await (await api(t.key, `/api/conversations/${meta.conversationId}`)).json();
    expect(read.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant']);
    const stranger = await tenant();
    for (const [method, body] of [['GET', undefined], ['PATCH', { title: 'x' }], ['DELETE', undefined]] as const) {
      expect((await api(stranger.key, `/api/conversations/${meta.conversationId}`, { method, body })).status).toBe(404);
    }
    expect((await api(stranger.key, '/api/conversations').then((r) => r.json())).data).toEqual([]);
    expect((await (await api(t.key, `/api/conversations/${meta.conversationId}`, { method: 'PATCH', body: { title: 'Greeting' } })).json()).title).toBe('Greeting');
    expect((await api(t.key, `/api/conversations/${meta.conversationId}`, { method: 'DELETE' })).status).toBe(200);
    expect((await api(t.key, `/api/conversations/${meta.conversationId}`)).status).toBe(404);
  });

  it('answers embeddings honestly, serves OpenAPI 3.1, CORS and security headers', async () => {
    const t = await tenant();
    const embeddings = await api(t.key, '/v1/embeddings', { body: { model: 'text-embedding-3-small', input: 'hi' } });
    expect(embeddings.status).toBe(404);
    expect((await embeddings.json()).error.code).toBe('model_not_found');
    const doc = await (await fetch(`${stack.gatewayUrl}/openapi.json`)).json();
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.paths['/v1/chat/completions'].post.requestBody.content['application/json'].schema.additionalProperties).toBe(false);
    const preflight = await fetch(`${stack.gatewayUrl}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'https://app.test', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.test');
    const foreign = await fetch(`${stack.gatewayUrl}/v1/models`, { headers: { origin: 'https://evil.test', authorization: `Bearer ${t.key}` } });
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
    expect(foreign.headers.get('x-content-type-options')).toBe('nosniff');
    expect(foreign.headers.get('x-request-id')).toBeTruthy();
  });
});

describe('cancellation', () => {
  it('a disconnect mid-stream aborts the engine\'s generation and bills the tokens generated', async () => {
    const t = await tenant();
    const aborted = async () => {
      const text = await (await fetch(stack.url('cpu-engine', '/metrics'))).text();
      return Number(/vllm:request_success_total\{[^}]*finished_reason="abort"[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const before = await aborted();
    const controller = new AbortController();
    const response = await api(t.key, '/v1/chat/completions', { body: chat('Write a long story about the sea.', { stream: true, max_tokens: 400 }) , headers: {} });
    const reader = response.body!.getReader();
    let seen = '';
    while ((seen.match(/"content":"[^"]+"/g) ?? []).length < 3) seen += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    controller.abort();
    await waitFor(async () => ((await aborted()) > before ? true : undefined), 'the engine to count an aborted request');
    const record = await waitFor(async () => {
      const { rows } = await db.query(`SELECT output_tokens, status FROM billing.usage_records WHERE tenant_id = $1`, [t.tenantId]);
      return rows[0];
    }, 'the usage record of the cancelled stream');
    expect(Number(record.output_tokens)).toBeGreaterThanOrEqual(3);
    expect(Number(record.output_tokens)).toBeLessThan(400);
  });
});

describe('async jobs and webhooks', () => {
  const verify = (secret: string, headers: Record<string, string | string[] | undefined>, body: string) => {
    const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
    const expected = createHmac('sha256', key).update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`).digest('base64');
    return headers['webhook-signature'] === `v1,${expected}`;
  };

  it('runs a batch job through to a signed webhook, visible only to its tenant, and survives a gateway restart', async () => {
    const t = await tenant();
    const hookPort = (hooks.address() as { port: number }).port;
    const registered = await (await api(t.key, '/api/webhooks', { body: { url: `http://127.0.0.1:${hookPort}/hook` } })).json();
    expect(registered.secret).toMatch(/^whsec_/);
    const submitted = await api(t.key, '/api/jobs', { body: { type: 'chat.batch', model: MODEL, requests: [{ messages: [{ role: 'user', content: 'Say one.' }], max_tokens: 4 }, { messages: [{ role: 'user', content: 'Say two.' }], max_tokens: 4 }] } });
    expect(submitted.status).toBe(202);
    const { job_id: jobId } = await submitted.json();
    const events = await (await api(t.key, `/api/jobs/${jobId}/events`)).text();
    const statuses = [...events.matchAll(/"status":"(\w+)"/g)].map((m) => m[1]);
    expect(statuses.at(-1)).toBe('complete');
    expect(statuses).toContain('generating');
    const job = await (await api(t.key, `/api/jobs/${jobId}`)).json();
    expect(job).toMatchObject({ status: 'complete', progress: 100 });
    expect(job.result.results).toHaveLength(2);
    expect((await api((await tenant()).key, `/api/jobs/${jobId}`)).status).toBe(404);

    const delivery = await waitFor(async () => received.find((r) => r.body.includes(jobId)), 'the webhook');
    expect(verify(registered.secret, delivery.headers, delivery.body)).toBe(true);
    expect(JSON.parse(delivery.body).type).toBe('job.completed');

    // A job submitted just before a restart completes after it.
    const later = await (await api(t.key, '/api/jobs', { body: { type: 'chat.batch', model: MODEL, requests: [{ messages: [{ role: 'user', content: 'Say three.' }], max_tokens: 4 }] } })).json();
    await stack.kill('gateway');
    await stack.startService('gateway');
    const done = await waitFor(async () => {
      const view = await (await api(t.key, `/api/jobs/${later.job_id}`)).json();
      return view.status === 'complete' || view.status === 'failed' ? view : undefined;
    }, 'the job to finish after the restart');
    if (done.status !== 'complete') console.log(JSON.stringify(done), stack.logs('gateway').slice(-40).join('\n'));
    expect(done.status).toBe('complete');
    expect(done.result.results).toHaveLength(1);
  });

  it('dead-letters a delivery that keeps failing and replays it', async () => {
    const t = await tenant();
    const hookPort = (hooks.address() as { port: number }).port;
    expect((await api(t.key, '/api/webhooks', { body: { url: 'https://localhost/x' } })).status).toBe(201);
    await api(t.key, '/api/webhooks', { body: { url: `http://127.0.0.1:${hookPort}/failing` } });
    hookStatus = 500;
    const { job_id: jobId } = await (await api(t.key, '/api/jobs', { body: { type: 'chat.batch', model: MODEL, requests: [{ messages: [{ role: 'user', content: 'Hi.' }], max_tokens: 2 }] } })).json();
    const letters = await waitFor(async () => {
      const list = await (await api(t.key, '/api/webhooks/dead-letters')).json();
      return list.data.length >= 2 ? list.data : undefined;
    }, 'dead letters');
    // localhost is refused outright (private), 127.0.0.1 is allowed for the test but answered 500 three times.
    const errors = letters.map((l: { last_error: string }) => l.last_error).join(' | ');
    expect(errors).toContain('private or loopback');
    expect(errors).toContain('500');
    const failing = letters.find((l: { last_error: string }) => l.last_error.includes('500'));
    expect(failing.attempts).toBe(3);
    expect((await api((await tenant()).key, `/api/webhooks/dead-letters/${failing.id}/replay`, { body: {} })).status).toBe(404);
    hookStatus = 200;
    const count = received.filter((r) => r.body.includes(jobId)).length;
    expect((await api(t.key, `/api/webhooks/dead-letters/${failing.id}/replay`, { body: {} })).status).toBe(202);
    await waitFor(async () => (received.filter((r) => r.body.includes(jobId)).length > count ? true : undefined), 'the replayed delivery');
  });
});
