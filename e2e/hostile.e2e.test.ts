import { connect } from 'node:net';
import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Credentials } from './support/stack';
import { MODEL, waitFor } from './support/stack';
import { useStack } from './support/suite';
import { postAnsweredEarly } from './support/early-answer';

/**
 * Hostile input against a running stack. Every answer must be a 4xx in the
 * OpenAI error shape (never a 5xx), and nothing may be written for a refused
 * request: the attacker tenant ends with no rows in billing, orchestrator or
 * gateway tables and no BullMQ job.
 */
const s = useStack();
let attacker: Credentials;
let redis: Redis;
const statuses: Array<{ what: string; status: number }> = [];

interface Answer { status: number; headers: Headers; body: any; text: string }

async function send(key: string | undefined, method: string, path: string, init: { body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const payload = init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
  const response = await fetch(`${s.stack.gatewayUrl}${path}`, {
    method,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...init.headers },
    body: payload,
  });
  const text = await response.text();
  let body: unknown;
  try { body = JSON.parse(text); } catch { body = undefined; }
  statuses.push({ what: `${method} ${path}`, status: response.status });
  return { status: response.status, headers: response.headers, body, text };
}

/** A 4xx in the one public error shape. */
function refused(answer: Answer, status: number, code?: string) {
  expect(answer.status, answer.text).toBe(status);
  if (typeof answer.body?.error !== 'object') throw new Error(`not the error shape: ${answer.text.slice(0, 300)}`);
  expect(Object.keys(answer.body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof answer.body.error.message).toBe('string');
  if (code) expect(answer.body.error.code).toBe(code);
}

/** One raw HTTP/1.1 exchange, for bytes fetch refuses to send. */
function rawRequest(lines: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const url = new URL(s.stack.gatewayUrl);
    const socket = connect(Number(url.port), url.hostname, () => socket.end(lines));
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('end', () => resolve(data));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
  });
}

const chat = (content: string, extra: Record<string, unknown> = {}) => ({ model: MODEL, messages: [{ role: 'user', content }], max_tokens: 4, temperature: 0, ...extra });
const POSTS = ['/v1/chat/completions', '/api/chat', '/api/jobs', '/api/webhooks', '/v1/embeddings', '/v1/billing/top-ups'];

beforeAll(async () => {
  attacker = s.stack.createTenant();
  redis = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: 1 });
  await s.stack.waitUntilServing(s.tenant.apiKey);
});

describe('malformed bodies', () => {
  it.each(POSTS)('refuses broken, non-object, nested and oversized JSON on %s', async (path) => {
    for (const raw of ['{', '{"model":', '[]', '"text"', 'null', '123', '{"a":1}{"b":2}', '\u0000{}', `{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`]) {
      refused(await send(attacker.apiKey, 'POST', path, { raw }), 400);
    }
    refused(await send(attacker.apiKey, 'POST', path, { raw: '{}', headers: { 'content-type': 'text/plain' } }), 415);
    refused(await send(attacker.apiKey, 'POST', path, { raw: '', headers: { 'content-type': 'application/json' } }), 400);
    const oversized = await postAnsweredEarly(`${s.stack.gatewayUrl}${path}`, { authorization: `Bearer ${attacker.apiKey}`, 'content-type': 'application/json' }, JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }));
    const text = await oversized.text();
    statuses.push({ what: `POST ${path}`, status: oversized.status });
    refused({ status: oversized.status, headers: oversized.headers, body: (() => { try { return JSON.parse(text); } catch { return undefined; } })(), text }, 413);
  });

  it('refuses deeply nested JSON even when an Idempotency-Key must fingerprint it', async () => {
    const deep = `{"model":"${MODEL}","messages":[{"role":"user","content":"hi"}],"metadata":{"a":${'['.repeat(200_000)}${']'.repeat(200_000)}}}`;
    refused(await send(attacker.apiKey, 'POST', '/v1/chat/completions', { raw: deep, headers: { 'idempotency-key': `deep-${randomUUID()}` } }), 400);
    refused(await send(attacker.apiKey, 'POST', '/v1/chat/completions', { raw: deep }), 400);
    const objects = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;
    refused(await send(attacker.apiKey, 'POST', '/api/jobs', { raw: objects, headers: { 'idempotency-key': `deep-${randomUUID()}` } }), 400);
  });
});

describe('wrong types, unknown and missing fields', () => {
  const cases: Array<[string, string, unknown, string?]> = [
    ['/v1/chat/completions', 'max_tokens as a string', chat('hi', { max_tokens: '10' })],
    ['/v1/chat/completions', 'huge max_tokens', chat('hi', { max_tokens: 1e12 })],
    ['/v1/chat/completions', 'max_tokens past MAX_SAFE_INTEGER', chat('hi', { max_tokens: 2 ** 60 })],
    ['/v1/chat/completions', 'max_tokens above the model limit', chat('hi', { max_tokens: 1_000_000 })],
    ['/v1/chat/completions', 'huge max_completion_tokens', chat('hi', { max_completion_tokens: 99_999_999 })],
    ['/v1/chat/completions', 'negative max_tokens', chat('hi', { max_tokens: -1 })],
    ['/v1/chat/completions', 'fractional max_tokens', chat('hi', { max_tokens: 1.5 })],
    ['/v1/chat/completions', 'messages as a string', { model: MODEL, messages: 'hi' }],
    ['/v1/chat/completions', 'an unknown role', { model: MODEL, messages: [{ role: 'root', content: 'x' }] }],
    ['/v1/chat/completions', 'model as a number', { model: 7, messages: [{ role: 'user', content: 'x' }] }],
    ['/v1/chat/completions', 'stream as a string', chat('hi', { stream: 'yes' })],
    ['/v1/chat/completions', 'temperature out of range', chat('hi', { temperature: 1e308 })],
    ['/v1/chat/completions', 'an unknown field', chat('hi', { logit_bias_typo: 1 }), 'unknown_parameter'],
    ['/v1/chat/completions', 'a prototype key', JSON.parse(`{"model":"${MODEL}","messages":[{"role":"user","content":"x"}],"__proto__":{"admin":true}}`)],
    ['/v1/chat/completions', 'no model', { messages: [{ role: 'user', content: 'x' }] }],
    ['/v1/chat/completions', 'no messages', { model: MODEL }],
    ['/api/chat', 'no messages', { id: 'x' }],
    ['/api/chat', 'huge max_tokens', { messages: [{ role: 'user', parts: [{ type: 'text', text: 'hi' }] }], max_tokens: 1e9 }],
    ['/api/chat', 'an unknown field', { messages: [{ role: 'user', parts: [] }], surprise: true }, 'unknown_parameter'],
    ['/api/jobs', 'a wrong type', { type: 'chat.batch', model: MODEL, requests: 'all' }],
    ['/api/jobs', 'huge max_tokens', { type: 'chat.batch', model: MODEL, requests: [{ messages: [{ role: 'user', content: 'x' }], max_tokens: 1e9 }] }],
    ['/api/jobs', 'an unknown type', { type: 'rm -rf', model: MODEL, requests: [] }],
    ['/api/webhooks', 'a private address', { url: 'https://127.0.0.1/hook' }],
    ['/api/webhooks', 'a non-http scheme', { url: 'file:///etc/passwd' }],
    ['/api/webhooks', 'credentials in the URL', { url: 'https://user:pw@example.com/hook' }],
    ['/api/webhooks', 'an empty event list (omitting it subscribes to all)', { url: 'https://example.com/hook', events: [] }],
    ['/api/webhooks', 'an event listed twice', { url: 'https://example.com/hook', events: ['job.completed', 'job.completed'] }],
    ['/api/webhooks', 'an unknown event', { url: 'https://example.com/hook', events: ['job.deleted'] }],
    ['/v1/embeddings', 'input as an object', { model: 'x', input: { a: 1 } }],
    ['/v1/billing/top-ups', 'credits as a string', { credits: '100' }],
    ['/v1/billing/top-ups', 'negative credits', { credits: -5 }],
    ['/v1/billing/top-ups', 'credits past the largest number', { credits: 1e300 }],
    ['/v1/billing/top-ups', 'fractional credits', { credits: 1.5 }],
    ['/v1/billing/top-ups', 'a javascript: return URL', { credits: 5, success_url: 'javascript:alert(1)' }],
    ['/v1/billing/top-ups', 'an unknown field', { credits: 5, amount: 1 }, 'unknown_parameter'],
    ['/v1/chat/completions', 'a NUL character in a message', chat('hi\u0000there'), 'invalid_character'],
    ['/v1/chat/completions', 'a NUL character in a key', { ...chat('hi'), metadata: { ['k\u0000']: 'v' } }, 'invalid_character'],
    ['/api/chat', 'a NUL character in a text part', { messages: [{ role: 'user', parts: [{ type: 'text', text: '\u0000' }] }] }, 'invalid_character'],
    ['/api/jobs', 'a NUL character deep in a batch', { type: 'chat.batch', model: MODEL, requests: [{ messages: [{ role: 'user', content: 'a\u0000' }] }] }, 'invalid_character'],
    ['/api/webhooks', 'a NUL character in the URL', { url: 'https://example.com/\u0000' }, 'invalid_character'],
  ];
  it.each(cases)('%s refuses %s with 400', async (path, _what, body, code) => {
    refused(await send(attacker.apiKey, 'POST', path, { body }), 400, code);
  });

  it('validates query strings and path parameters', async () => {
    for (const path of ['/api/conversations?limit=-1', '/api/conversations?limit=abc', '/api/usage?from=yesterday', '/api/usage?bogus=1', '/v1/billing/usage?from=not-a-date', '/api/usage?from=%00', '/v1/billing/usage?group_by=%00',
      // Limits and cursors of the billing views: out of range, fractional, repeated, not a number, not a cursor.
      '/v1/billing/ledger?limit=99999999999', '/v1/billing/ledger?limit=1.5', '/v1/billing/ledger?limit=-3', '/v1/billing/ledger?limit=a&limit=b',
      '/v1/billing/ledger?before=abc', '/v1/billing/ledger?before=1e400', '/v1/billing/ledger?bogus=1', '/v1/billing/holds?limit=99999999999',
      '/v1/billing/usage?group_by=day,bogus', '/v1/billing/usage?group_by=', '/v1/billing/usage?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z']) {
      refused(await send(attacker.apiKey, 'GET', path), 400);
    }
    for (const id of ['not-a-uuid', '%00', '..%2F..%2Fetc', `${'a'.repeat(200)}`, "1'%20OR%20'1'%3D'1"]) {
      const answer = await send(attacker.apiKey, 'GET', `/api/conversations/${id}`);
      expect([400, 404]).toContain(answer.status);
      refused(answer, answer.status);
      const missing = id === '%00' ? 400 : 404;
      refused(await send(attacker.apiKey, 'GET', `/api/jobs/${id}`), missing);
      refused(await send(attacker.apiKey, 'POST', `/api/webhooks/dead-letters/${id}/replay`), missing);
      refused(await send(attacker.apiKey, 'DELETE', `/api/conversations/${id}`), missing === 400 ? 400 : answer.status);
    }
  });
});

/** A near miss of a real secret: the last character always differs (a fixed 'x' equals it one time in 64). */
function withLastCharChanged(secret: string): string {
  const last = secret.at(-1);
  return `${secret.slice(0, -1)}${last === 'x' ? 'y' : 'x'}`;
}

describe('credentials', () => {
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const tokens = () => [
    '', 'Bearer', 'Basic dXNlcjpwYXNz', `Bearer ${withLastCharChanged(attacker.apiKey)}`, `Bearer pk_${'A'.repeat(16)}_${'B'.repeat(40)}`,
    `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ tenant_id: attacker.tenantId, sub: 'x', exp: 9e9 })}.`,
    `Bearer ${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ tenant_id: attacker.tenantId, sub: 'x', exp: 1 })}.c2lnbmF0dXJl`,
    `Bearer ${'x'.repeat(8000)}`,
  ];
  it.each(['GET /v1/models', 'POST /v1/chat/completions', 'GET /api/conversations', 'POST /api/jobs', 'GET /api/usage', 'GET /v1/billing/balance', 'GET /api/webhooks/dead-letters'])('refuses missing, forged and unsigned credentials on %s', async (route) => {
    const [method, path] = route.split(' ') as [string, string];
    for (const authorization of tokens()) {
      refused(await send(undefined, method, path, { body: method === 'POST' ? chat('hi') : undefined, headers: authorization ? { authorization } : {} }), 401);
    }
  });

  it('keeps tenant keys out of the operator APIs', async () => {
    const admin = await send(attacker.apiKey, 'POST', '/admin/tenants', { body: { name: 'mine' } });
    refused(admin, admin.status === 404 ? 404 : 401); // 404 where ADMIN_TOKEN is unset (admin API off)
    refused(await send(attacker.apiKey, 'GET', '/v1/admin/billing/cost-report'), 401);
    refused(await send(attacker.apiKey, 'POST', '/v1/admin/billing/kill-switch/lift', { body: { tenant_id: s.tenant.tenantId } }), 401);
  });
});

describe('tenant isolation on every tenant-owned endpoint', () => {
  it('never lets another tenant read, rename, delete or replay what it does not own', async () => {
    const owner = s.tenant;
    const turn = await send(owner.apiKey, 'POST', '/v1/chat/completions', { body: chat('Say hi.') });
    expect(turn.status, turn.text).toBe(200);
    const conversation = turn.headers.get('x-conversation-id')!;
    const job = await send(owner.apiKey, 'POST', '/api/jobs', { body: { type: 'chat.batch', model: MODEL, requests: [{ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 }] } });
    expect(job.status, job.text).toBe(202);
    const hook = await send(owner.apiKey, 'POST', '/api/webhooks', { body: { url: 'https://example.com/hook' } });
    expect(hook.status, hook.text).toBe(201);
    const letter = `dl_${randomUUID()}`;
    await s.db.query(`INSERT INTO gateway.webhook_dead_letters (id, tenant_id, webhook_id, event_id, event_type, payload, attempts, last_error) VALUES ($1, $2, $3, $4, 'job.completed', '{}', 3, 'refused')`, [letter, owner.tenantId, hook.body.id, `evt_${randomUUID()}`]);

    const them = attacker.apiKey;
    refused(await send(them, 'GET', `/api/conversations/${conversation}`), 404);
    refused(await send(them, 'PATCH', `/api/conversations/${conversation}`, { body: { title: 'pwned' } }), 404);
    refused(await send(them, 'DELETE', `/api/conversations/${conversation}`), 404);
    refused(await send(them, 'POST', '/v1/chat/completions', { body: chat('continue', { conversation_id: conversation }) }), 404);
    refused(await send(them, 'POST', '/v1/chat/completions', { body: chat('continue'), headers: { 'x-conversation-id': conversation } }), 404);
    refused(await send(them, 'POST', '/api/chat', { body: { id: conversation, messages: [{ role: 'user', parts: [{ type: 'text', text: 'x' }] }], max_tokens: 2 } }), 404);
    refused(await send(them, 'GET', `/api/jobs/${job.body.job_id}`), 404);
    refused(await send(them, 'GET', `/api/jobs/${job.body.job_id}/events`), 404);
    refused(await send(them, 'POST', `/api/webhooks/dead-letters/${letter}/replay`), 404);
    const lists = await Promise.all(['/api/conversations', '/api/webhooks', '/api/webhooks/dead-letters', '/api/usage', '/v1/billing/balance', '/v1/billing/holds', '/v1/billing/ledger', '/v1/billing/usage', '/v1/billing/invoice-preview'].map((path) => send(them, 'GET', path, { headers: { 'x-tenant-id': owner.tenantId } })));
    for (const list of lists) {
      expect(list.status, list.text).toBeLessThan(500);
      for (const secret of [owner.tenantId, owner.userId, conversation, hook.body.id, letter]) expect(list.text).not.toContain(secret);
    }

    // Postgres text cannot hold U+0000; the owner's own rename with one is a 400, not a 500.
    refused(await send(owner.apiKey, 'PATCH', `/api/conversations/${conversation}`, { body: { title: 'hK\u00f9\u00caa\f\u0016\u0000U\u00adN' } }), 400, 'invalid_character');

    const mine = await send(owner.apiKey, 'GET', `/api/conversations/${conversation}`);
    expect(mine.status).toBe(200);
    expect(mine.body.title).not.toBe('pwned');
    expect(mine.body.title ?? '').not.toContain('\u0000');
    const { rows } = await s.db.query('SELECT replayed_at FROM gateway.webhook_dead_letters WHERE id = $1', [letter]);
    expect(rows[0].replayed_at).toBeNull();
    expect((await send(owner.apiKey, 'GET', `/api/jobs/${job.body.job_id}`)).status).toBe(200);
  });
});

describe('headers', () => {
  it('refuses CR, LF and NUL in header values and oversized headers without reaching a route', async () => {
    const base = (extra: string) => `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${attacker.apiKey}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n${extra}\r\n{}`;
    for (const extra of ['x-request-id: a\rset-cookie: x=1\r\n', 'x-request-id: a\u0000b\r\n', 'idempotency-key: a\rb\r\n', 'bad header: 1\r\n', `x-pad: ${'p'.repeat(20_000)}\r\n`]) {
      const answer = await rawRequest(base(extra));
      expect(answer).toMatch(/^HTTP\/1\.1 4(00|31) /);
      expect(answer.toLowerCase()).not.toContain('set-cookie');
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
      expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    }
  });

  it('never echoes a malformed x-request-id and refuses bogus conversation ids and Idempotency-Keys', async () => {
    for (const id of ['<script>alert(1)</script>', 'a b', 'x'.repeat(4000), '%0d%0aset-cookie:%20x=1']) {
      const answer = await send(attacker.apiKey, 'GET', '/v1/models', { headers: { 'x-request-id': id } });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('x-request-id')).not.toBe(id);
      expect(answer.headers.get('x-request-id')).toMatch(/^[\w.:-]{1,128}$/);
    }
    for (const id of ['not-a-uuid', '../../etc/passwd', "' OR 1=1 --", '00000000-0000-0000-0000-00000000000g']) {
      refused(await send(attacker.apiKey, 'POST', '/v1/chat/completions', { body: chat('hi'), headers: { 'x-conversation-id': id } }), 400);
    }
    refused(await send(attacker.apiKey, 'POST', '/v1/chat/completions', { body: chat('hi', { conversation_id: randomUUID() }), headers: { 'x-conversation-id': randomUUID() } }), 400);
    for (const key of ['has space', 'x'.repeat(256), 'ünïcode', '']) {
      const answer = await send(attacker.apiKey, 'POST', '/v1/chat/completions', { body: chat('hi', { max_tokens: 'bad' }), headers: { 'idempotency-key': key } });
      refused(answer, 400);
    }
  });
});

describe('idempotency key reuse', () => {
  it('runs concurrent duplicates once (409 for the rest), replays the same body, 422 for another, one usage record', async () => {
    const t = s.stack.createTenant();
    const key = `idem-${randomUUID()}`;
    const body = chat('Name a colour.');
    const answers = await Promise.all(Array.from({ length: 4 }, () => send(t.apiKey, 'POST', '/v1/chat/completions', { body, headers: { 'idempotency-key': key } })));
    const ran = answers.filter((a) => a.status === 200 && a.headers.get('idempotent-replayed') !== 'true');
    expect(ran).toHaveLength(1);
    for (const other of answers.filter((a) => a !== ran[0])) {
      if (other.status === 409) refused(other, 409, 'idempotency_in_flight');
      else expect(other.headers.get('idempotent-replayed')).toBe('true');
    }
    const replay = await send(t.apiKey, 'POST', '/v1/chat/completions', { body, headers: { 'idempotency-key': key } });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.text).toBe(ran[0]!.text);
    refused(await send(t.apiKey, 'POST', '/v1/chat/completions', { body: chat('Another.'), headers: { 'idempotency-key': key } }), 422, 'idempotency_key_reused');
    refused(await send(t.apiKey, 'POST', '/v1/chat/completions', { body: { ...body, stream: true }, headers: { 'idempotency-key': key } }), 422);

    const count = async (table: string) => Number((await s.db.query(`SELECT count(*) AS n FROM ${table} WHERE tenant_id = $1`, [t.tenantId])).rows[0].n);
    expect(await count('billing.reservations')).toBe(1);
    await waitFor(async () => ((await count('billing.usage_records')) >= 1 ? true : undefined), 'the usage record');
    await waitFor(async () => ((await s.db.query(`SELECT 1 FROM billing.reservations WHERE tenant_id = $1 AND status = 'held'`, [t.tenantId])).rowCount === 0 ? true : undefined), 'the hold to settle');
    expect(await count('billing.usage_records')).toBe(1);
    expect(await count('orchestrator.messages')).toBe(2);
  });
});

describe('after all of it', () => {
  it('answered nothing with a 5xx and wrote nothing for the refused tenant', async () => {
    expect(statuses.filter((entry) => entry.status >= 500)).toEqual([]);
    const held = await s.db.query(`SELECT count(*) AS n FROM billing.reservations WHERE tenant_id = $1 AND status NOT IN ('released')`, [attacker.tenantId]);
    expect(Number(held.rows[0].n), 'reservations not released').toBe(0);
    for (const table of ['billing.usage_records', 'orchestrator.messages', 'orchestrator.conversations', 'gateway.webhooks', 'gateway.webhook_dead_letters']) {
      const { rows } = await s.db.query(`SELECT count(*) AS n FROM ${table} WHERE tenant_id = $1`, [attacker.tenantId]);
      expect(Number(rows[0].n), table).toBe(0);
    }
    const jobKeys = (await redis.keys('bull:gateway-jobs:*')).filter((name) => /:[^:]+$/.test(name) && !/:(id|meta|events|stalled-check|marker|wait|active|completed|failed|delayed|prioritized|paused|pc|limiter)$/.test(name));
    for (const name of jobKeys) {
      const data = (await redis.type(name)) === 'hash' ? await redis.hget(name, 'data') : null;
      expect(data ?? '').not.toContain(attacker.tenantId);
    }
    const idem = await redis.keys(`*${attacker.tenantId}*`);
    expect(idem.filter((name) => name.includes('idem'))).toEqual([]);
    redis.disconnect();
  });
});
