import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';
import { Pool } from 'pg';
import Stripe from 'stripe';
import { billing } from '@ai-platform/contracts';
import { createGrpcClient, type ServiceClient } from '@ai-platform/platform';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MODEL, TestStack, waitFor, type Credentials } from './support/stack';

const ADMIN_TOKEN = `admin-${randomUUID()}-${randomUUID()}`;
const WEBHOOK_SECRET = 'whsec_e2e_billing_secret';
const startedAt = new Date(Date.now() - 1_000).toISOString();
let stack: TestStack;
let tenant: Credentials;
let client: OpenAI;
let db: Pool;
let rpc: ServiceClient<typeof billing.BillingService>;

beforeAll(async () => {
  stack = await TestStack.start({
    billing: {
      REDIS_URL: process.env.REDIS_URL!, KILL_SWITCH_RECONCILE_MS: '500', STRIPE_SECRET_KEY: 'sk_test_123',
      STRIPE_API_BASE: process.env.STRIPE_API_BASE ?? 'http://127.0.0.1:12111', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, METER_REPORT_INTERVAL_MS: '3600000',
    },
    gateway: { ADMIN_TOKEN, KILL_SWITCH_TIMEOUT_MS: '200' },
  });
  tenant = stack.createTenant();
  client = new OpenAI({ apiKey: tenant.apiKey, baseURL: `${stack.gatewayUrl}/v1`, maxRetries: 0 });
  db = new Pool({ connectionString: process.env.DATABASE_URL });
  rpc = createGrpcClient(billing.BillingService, `127.0.0.1:${stack.ports.billing.grpc}`, { defaultTimeoutMs: 5_000 });
  await stack.waitUntilServing(tenant.apiKey);
});

afterEach((context) => {
  if (context.task.result?.state === 'fail') stack?.printLogs();
});

afterAll(async () => {
  rpc?.close();
  await db?.end();
  await stack?.stop();
});

async function get(path: string, token = tenant.apiKey): Promise<any> {
  const response = await fetch(`${stack.gatewayUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  expect(response.status, `${path}: ${response.status}`).toBe(200);
  const text = await response.text();
  expect(text, `${path} leaks protobuf internals`).not.toContain('$typeName');
  return JSON.parse(text);
}

async function sql<T = any>(text: string, values: unknown[] = []): Promise<T[]> {
  return (await db.query(text, values)).rows as T[];
}

const chat = (content: string) => client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content }], max_tokens: 8, temperature: 0 });

describe('billing through the gateway', () => {
  it('answers balance, holds, ledger, usage by day/model/user/key, invoice preview and cost report exactly as the ledger holds them', async () => {
    for (const content of ['Say hi.', 'Name a colour.', 'Count to three.']) await chat(content);
    await waitFor(async () => ((await sql(`SELECT count(*)::int AS n FROM billing.usage_records WHERE tenant_id = $1`, [tenant.tenantId]))[0].n >= 3 ? true : undefined), 'three usage records');
    // An open hold, so holds and available are not trivially zero.
    const hold = await rpc.reserve({ tenantId: tenant.tenantId, model: MODEL, inputTokens: 100, maxOutputTokens: 1_000 });

    const [ledgerSum] = await sql(
      `SELECT coalesce(sum(e.amount_micros), 0)::text AS balance, count(*)::int AS n FROM billing.ledger_entries e JOIN billing.accounts a ON a.id = e.account_id WHERE a.tenant_id = $1`,
      [tenant.tenantId],
    );
    const [held] = await sql(`SELECT coalesce(sum(amount_micros), 0)::text AS held, count(*)::int AS n FROM billing.reservations WHERE tenant_id = $1 AND status = 'held'`, [tenant.tenantId]);
    expect(held.held).toBe(hold.amountMicros.toString());

    const balance = await get('/v1/billing/balance');
    expect(balance).toMatchObject({ balanceMicros: ledgerSum.balance, heldMicros: held.held, availableMicros: (BigInt(ledgerSum.balance) - BigInt(held.held)).toString() });

    const holds = await get('/v1/billing/holds');
    expect(holds.totalMicros).toBe(held.held);
    expect(holds.holds.map((h: any) => h.reservationId)).toEqual([hold.reservationId]);

    const ledger = await get('/v1/billing/ledger?limit=500');
    expect(ledger.balanceMicros).toBe(ledgerSum.balance);
    expect(ledger.entries).toHaveLength(ledgerSum.n);
    expect(ledger.entries.reduce((sum: bigint, e: any) => sum + BigInt(e.amountMicros), 0n).toString()).toBe(ledgerSum.balance);
    expect(ledger.entries.filter((e: any) => e.kind === 'usage')).toHaveLength(3);

    const columns = { day: `to_char(date_trunc('day', occurred_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')`, model: 'model', user: 'user_id', key: 'api_key_id' } as const;
    for (const groups of [['day'], ['model'], ['user'], ['key'], ['day', 'model', 'user', 'key']] as Array<Array<keyof typeof columns>>) {
      const expected = await sql(
        `SELECT ${groups.map((g) => `${columns[g]} AS "${g}"`).join(', ')}, count(*)::text AS requests, sum(input_tokens)::text AS input, sum(output_tokens)::text AS output, sum(cost_micros)::text AS cost
           FROM billing.usage_records WHERE tenant_id = $1 GROUP BY ${groups.map((_, i) => i + 1).join(', ')} ORDER BY ${groups.map((_, i) => i + 1).join(', ')}`,
        [tenant.tenantId],
      );
      const usage = await get(`/v1/billing/usage?group_by=${groups.join(',')}`);
      const field = { day: 'day', model: 'model', user: 'userId', key: 'apiKeyId' } as const;
      expect(usage.groups.map((g: any) => ({ ...Object.fromEntries(groups.map((name) => [name, g[field[name]]])), requests: g.requests, input: g.inputTokens, output: g.outputTokens, cost: g.costMicros }))).toEqual(expected);
      expect(usage.totalCostMicros).toBe(expected.reduce((sum, row) => sum + BigInt(row.cost), 0n).toString());
    }
    const [charged] = await sql(
      `SELECT coalesce(-sum(e.amount_micros), 0)::text AS usage FROM billing.ledger_entries e JOIN billing.accounts a ON a.id = e.account_id JOIN billing.ledger_transactions t ON t.id = e.transaction_id
        WHERE a.tenant_id = $1 AND t.kind IN ('usage', 'reservation_expiry', 'expiry_adjustment')`,
      [tenant.tenantId],
    );
    const [recorded] = await sql(`SELECT sum(cost_micros)::text AS cost FROM billing.usage_records WHERE tenant_id = $1`, [tenant.tenantId]);
    expect(charged.usage).toBe(recorded.cost); // every usage record charged exactly once

    const invoice = await get('/v1/billing/invoice-preview');
    expect(invoice).toMatchObject({ usageMicros: charged.usage, openingBalanceMicros: '0', closingBalanceMicros: ledgerSum.balance });
    // Timestamps are RFC 3339 strings in the public JSON, not protobuf {seconds, nanos}.
    const rfc3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
    expect(invoice.periodStart).toMatch(rfc3339);
    expect(new Date(invoice.periodEnd).getTime()).toBeGreaterThan(new Date(invoice.periodStart).getTime());
    // The ledger pages newest first by cursor, one entry at a time here, and the pages add up to the whole ledger.
    const seen: any[] = [];
    let page = await get('/v1/billing/ledger?limit=1');
    for (let guard = 0; page.entries.length > 0 && guard < 50; guard++) {
      seen.push(...page.entries);
      if (!page.nextCursor) break;
      page = await get(`/v1/billing/ledger?limit=1&before=${page.nextCursor}`);
    }
    expect(seen.every((entry) => rfc3339.test(entry.createdAt))).toBe(true);
    expect(seen.map((entry) => Date.parse(entry.createdAt))).toEqual(seen.map((entry) => Date.parse(entry.createdAt)).sort((a, b) => b - a));
    expect(seen.reduce((sum, entry) => sum + BigInt(entry.amountMicros), 0n).toString()).toBe(ledgerSum.balance);
    expect(invoice.lines.reduce((sum: bigint, line: any) => sum + BigInt(line.amountMicros), 0n).toString()).toBe(ledgerSum.balance);

    const report = await get(`/v1/admin/billing/cost-report?from=${encodeURIComponent(startedAt)}&limit=1000`, ADMIN_TOKEN);
    expect(report.tenants.find((t: any) => t.tenantId === tenant.tenantId)).toMatchObject({ requests: '3', usageMicros: recorded.cost, balanceMicros: ledgerSum.balance });
    const tenantUsage = await fetch(`${stack.gatewayUrl}/v1/admin/billing/cost-report`, { headers: { authorization: `Bearer ${tenant.apiKey}` } });
    expect(tenantUsage.status).toBe(401); // an API key is not an operator

    await rpc.release({ reservationId: hold.reservationId });
  });

  it('trips the kill switch at the hard limit, enforces it on the gateway from Redis, and an operator lifts it through the admin route', async () => {
    const other = stack.createTenant();
    const otherClient = new OpenAI({ apiKey: other.apiKey, baseURL: `${stack.gatewayUrl}/v1`, maxRetries: 0 });
    await rpc.setBudget({ budget: { tenantId: other.tenantId, scope: 'tenant', period: 'day', limitMicros: 1n, hardLimitPercent: 100 } });
    const ask = () => otherClient.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8 });
    // Reserve finds the budget exhausted: 402 and the switch trips.
    await expect(ask()).rejects.toMatchObject({ status: 402 });
    await waitFor(async () => ((await rpc.listBudgets({ tenantId: other.tenantId })).budgets[0]?.tripped ? true : undefined), 'the switch to trip');
    // Now the gateway refuses before billing, from the Redis key every replica reads.
    await waitFor(async () => {
      const error = await ask().catch((caught) => caught);
      return error?.status === 402 && error?.code === 'budget_exceeded' ? error : undefined;
    }, 'the gateway to enforce the switch from Redis', 10_000);
    // Every endpoint that spends refuses the same way: the product chat and async jobs.
    const post = (path: string, body: unknown) => fetch(`${stack.gatewayUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${other.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    for (const [path, body] of [
      ['/api/chat', { messages: [{ id: 'm1', role: 'user', parts: [{ type: 'text', text: 'Hi' }] }], max_tokens: 8 }],
      ['/api/jobs', { type: 'chat.batch', model: MODEL, requests: [{ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8 }] }],
    ] as const) {
      const answer = await post(path, body);
      expect(answer.status, path).toBe(402);
      expect((await answer.json()).error.code, path).toBe('budget_exceeded');
    }
    const { rows } = await db.query(`SELECT count(*)::int AS n FROM billing.reservations WHERE tenant_id = $1`, [other.tenantId]);
    expect(rows[0].n).toBe(0); // nothing was ever held

    const refused = await fetch(`${stack.gatewayUrl}/v1/admin/billing/kill-switch/lift`, { method: 'POST', headers: { authorization: `Bearer ${other.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ tenant_id: other.tenantId }) });
    expect(refused.status).toBe(401);
    const lift = await fetch(`${stack.gatewayUrl}/v1/admin/billing/kill-switch/lift`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ tenant_id: other.tenantId }) });
    expect(lift.status).toBe(201);
    expect(await lift.json()).toMatchObject({ lifted: 1 });
    const answer = await ask();
    expect(answer.choices[0]?.message).toBeDefined();
  });

  it('admits concurrent requests only as far as credit goes: final balance never below zero', async () => {
    const poor = stack.createTenant();
    const poorClient = new OpenAI({ apiKey: poor.apiKey, baseURL: `${stack.gatewayUrl}/v1`, maxRetries: 0 });
    const ask = () => poorClient.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8 });
    await ask();
    const [{ amount }] = await sql(`SELECT amount_micros::text AS amount FROM billing.reservations WHERE tenant_id = $1`, [poor.tenantId]);
    const balanceNow = async () => BigInt((await sql(`SELECT coalesce(sum(e.amount_micros), 0)::text AS b FROM billing.ledger_entries e JOIN billing.accounts a ON a.id = e.account_id WHERE a.tenant_id = $1`, [poor.tenantId]))[0].b);
    await waitFor(async () => ((await balanceNow()) < 100_000_000n ? true : undefined), 'the first usage to settle');
    // Leave credit for exactly 5 worst cases, then fire 40 at once.
    await rpc.postCredit({ tenantId: poor.tenantId, kind: 'adjustment', amountMicros: 5n * BigInt(amount) - (await balanceNow()), reference: `e2e-${randomUUID()}`, description: 'e2e: leave 5 requests of credit' });
    const results = await Promise.allSettled(Array.from({ length: 40 }, ask));
    const admitted = results.filter((r) => r.status === 'fulfilled').length;
    const refused = results.filter((r) => r.status === 'rejected' && (r.reason as { status?: number }).status === 402).length;
    expect(admitted + refused).toBe(40);
    expect(admitted).toBeGreaterThanOrEqual(5); // settled usage (≤ worst case) may free credit for a few more
    await waitFor(async () => ((await sql(`SELECT count(*)::int AS n FROM billing.reservations WHERE tenant_id = $1 AND status = 'held'`, [poor.tenantId]))[0].n === 0 ? true : undefined), 'every hold settled');
    expect(await balanceNow()).toBeGreaterThanOrEqual(0n);
  });

  it('takes Stripe webhooks at the public route with the raw body, verified by billing, and credits a redelivery once', async () => {
    const checkout = await get('/v1/billing/balance').then(() =>
      fetch(`${stack.gatewayUrl}/v1/billing/top-ups`, { method: 'POST', headers: { authorization: `Bearer ${tenant.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ credits: 5, currency: 'usd' }) }),
    );
    expect(checkout.status).toBe(201);
    const session = (await checkout.json()) as { sessionId: string; orderId: string };
    const before = BigInt((await get('/v1/billing/balance')).balanceMicros);
    // Stripe's own formatting (spacing, key order) must reach billing byte for byte, or the signature fails.
    const payload = `{\n  "id": "evt_${randomUUID()}",\n  "object": "event", "type": "checkout.session.completed", "created": ${Math.floor(Date.now() / 1000)},\n  "data": {"object": {"id": "${session.sessionId}", "object": "checkout.session", "client_reference_id": "${session.orderId}", "payment_status": "paid", "currency": "usd", "amount_total": 500, "metadata": {}}}\n}`;
    const signature = new Stripe('sk_test_123').webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET });
    const deliver = (body: string, sig = signature) => fetch(`${stack.gatewayUrl}/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': sig }, body });

    const first = await deliver(payload);
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ received: true, duplicate: false, outcome: 'applied' });
    const again = await deliver(payload);
    expect(await again.json()).toMatchObject({ duplicate: true });
    expect(BigInt((await get('/v1/billing/balance')).balanceMicros)).toBe(before + 5_000_000n);

    expect((await deliver(payload.replace('"amount_total": 500', '"amount_total": 50000'))).status).toBe(400); // tampered
    expect((await deliver(payload, 't=1,v1=00')).status).toBe(400); // forged
    expect((await fetch(`${stack.gatewayUrl}/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload })).status).toBe(400); // unsigned
    expect(BigInt((await get('/v1/billing/balance')).balanceMicros)).toBe(before + 5_000_000n);
  });
});
