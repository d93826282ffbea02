import { createServer, request as httpRequest, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeterReporter } from '../src/stripe/meter-reporter';
import { balanceOf, GRANT_MICROS, newTenant, publishUsage, startTestBilling, usageEvent, waitFor, type TestBilling } from './support/harness';

const SECRET = 'whsec_test_secret';
const stripe = new Stripe('sk_test_123');

/** A recording proxy in front of stripe-mock that can play "Stripe is down". */
let proxy: Server;
let down = false;
const meterBodies: URLSearchParams[] = [];
let billing: TestBilling;

beforeAll(async () => {
  const upstream = new URL(process.env.STRIPE_API_BASE ?? 'http://127.0.0.1:12111');
  proxy = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url?.startsWith('/v1/billing/meter_events')) {
        if (down) return res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"down","type":"api_error"}}');
        meterBodies.push(new URLSearchParams(body.toString()));
      }
      const forward = httpRequest({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  billing = await startTestBilling({
    STRIPE_SECRET_KEY: 'sk_test_123',
    STRIPE_API_BASE: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    STRIPE_WEBHOOK_SECRET: SECRET,
    METER_REPORT_INTERVAL_MS: '3600000',
    AUTO_TOPUP_INTERVAL_MS: '3600000',
  });
});

afterAll(async () => {
  await billing?.close();
  proxy?.close();
});

function delivery(event: Record<string, unknown>, secret = SECRET) {
  const payload = JSON.stringify({ object: 'event', api_version: '2024-06-20', created: Math.floor(Date.now() / 1000), ...event });
  return { payload: Buffer.from(payload), signature: stripe.webhooks.generateTestHeaderString({ payload, secret }) };
}

describe('stripe', () => {
  it('reports usage as meter events with one identifier each, queued while Stripe is down and never double-reported', async () => {
    const reporter = billing.running.app.get(MeterReporter);
    await reporter.runOnce(); // drain what earlier tests left
    const [a, b] = [newTenant(), newTenant()];
    const events = [usageEvent({ tenantId: a, inputTokens: 1000, outputTokens: 1000 }), usageEvent({ tenantId: a, inputTokens: 10, outputTokens: 10 }), usageEvent({ tenantId: b, inputTokens: 100, outputTokens: 100 })];
    for (const event of events) await publishUsage(billing.publisher, event);
    // All three recorded (a tenant without an account yet also has a balance below the grant).
    await waitFor('usage settled', async () => (await billing.pool.query(`SELECT 1 FROM billing.usage_records WHERE tenant_id = ANY($1)`, [[a, b]])).rowCount === 3 && (await balanceOf(billing.pool, a)) < GRANT_MICROS && (await balanceOf(billing.pool, b)) < GRANT_MICROS);
    down = true;
    const before = meterBodies.length;
    expect(await reporter.runOnce()).toBe(0);
    const { rows: queued } = await billing.pool.query(`SELECT id, tenant_id, value_micros, attempts FROM billing.meter_reports WHERE tenant_id = ANY($1) AND status = 'pending'`, [[a, b]]);
    expect(queued.length).toBeGreaterThanOrEqual(1);
    down = false;
    await billing.pool.query(`UPDATE billing.meter_reports SET next_attempt_at = now() WHERE status = 'pending'`);
    await waitFor('reports sent', async () => (await reporter.runOnce()) >= 0 && (await billing.pool.query(`SELECT 1 FROM billing.meter_reports WHERE tenant_id = ANY($1) AND status = 'pending'`, [[a, b]])).rowCount === 0);
    const sent = meterBodies.slice(before);
    const ids = sent.map((body) => body.get('identifier'));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every((id) => id?.startsWith('mr_'))).toBe(true);
    const { rows } = await billing.pool.query(`SELECT tenant_id, sum(value_micros)::text AS total, count(*)::int AS n FROM billing.meter_reports WHERE tenant_id = ANY($1) GROUP BY tenant_id`, [[a, b]]);
    const usage = await billing.pool.query(`SELECT tenant_id, sum(cost_micros)::text AS total FROM billing.usage_records WHERE tenant_id = ANY($1) GROUP BY tenant_id`, [[a, b]]);
    expect(Object.fromEntries(rows.map((r) => [r.tenant_id, r.total]))).toEqual(Object.fromEntries(usage.rows.map((r) => [r.tenant_id, r.total])));
  });

  it('a completed checkout credits the ledger once, also when the webhook is redelivered; forged, replayed and mismatched ones move nothing', async () => {
    const tenantId = newTenant();
    const checkout = await billing.client.createTopUpCheckout({ tenantId, creditsMicros: 5_000_000n, currency: 'usd', successUrl: 'https://example.com/ok', cancelUrl: 'https://example.com/no' });
    expect(checkout.sessionId).toMatch(/^cs_/);
    expect(checkout.amountMinor).toBe(500n);
    await expect(billing.client.createTopUpCheckout({ tenantId, creditsMicros: 5_000_000n, currency: 'eur' })).rejects.toThrow(/currency mismatch/);

    const session = { id: checkout.sessionId, object: 'checkout.session', client_reference_id: checkout.orderId, payment_status: 'paid', currency: 'usd', amount_total: 500, metadata: {} };
    const good = delivery({ id: `evt_${randomUUID()}`, type: 'checkout.session.completed', data: { object: session } });
    expect(await billing.client.handleStripeWebhook(good)).toMatchObject({ duplicate: false, outcome: 'applied' });
    expect(await billing.client.handleStripeWebhook(good)).toMatchObject({ duplicate: true });
    // The same session in a new event id (Stripe retried with a new event): still credited once.
    expect(await billing.client.handleStripeWebhook(delivery({ id: `evt_${randomUUID()}`, type: 'checkout.session.completed', data: { object: session } }))).toMatchObject({ outcome: 'duplicate' });
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS + 5_000_000n);

    const forged = delivery({ id: `evt_${randomUUID()}`, type: 'checkout.session.completed', data: { object: session } }, 'whsec_wrong');
    await expect(billing.client.handleStripeWebhook(forged)).rejects.toThrow(/signature/i);
    const tampered = { ...good, payload: Buffer.from(good.payload.toString().replace('"amount_total":500', '"amount_total":50000')) };
    await expect(billing.client.handleStripeWebhook(tampered)).rejects.toThrow(/signature/i);
    const old = JSON.stringify({ id: `evt_${randomUUID()}`, object: 'event', type: 'checkout.session.completed', data: { object: session } });
    const replayed = { payload: Buffer.from(old), signature: stripe.webhooks.generateTestHeaderString({ payload: old, secret: SECRET, timestamp: Math.floor(Date.now() / 1000) - 3600 }) };
    await expect(billing.client.handleStripeWebhook(replayed)).rejects.toThrow(/signature|tolerance|timestamp/i);

    const second = await billing.client.createTopUpCheckout({ tenantId, creditsMicros: 2_000_000n, currency: 'usd' });
    const wrongCurrency = delivery({ id: `evt_${randomUUID()}`, type: 'checkout.session.completed', data: { object: { ...session, id: second.sessionId, client_reference_id: second.orderId, currency: 'eur', amount_total: 200 } } });
    expect((await billing.client.handleStripeWebhook(wrongCurrency)).outcome).toMatch(/^rejected: currency mismatch/);
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS + 5_000_000n);
  });

  it('auto top-up charges the saved payment method below the threshold and the succeeded PaymentIntent credits once', async () => {
    const tenantId = newTenant();
    await billing.client.setTenantSettings({ tenantId, autoTopupThresholdMicros: 2_000_000n, autoTopupAmountMicros: 10_000_000n, autoTopupPaymentMethod: 'pm_card_visa' });
    const { AutoTopUp } = await import('../src/stripe/auto-top-up');
    expect(await billing.running.app.get(AutoTopUp).runOnce()).toBeGreaterThanOrEqual(1);
    const { rows } = await billing.pool.query(`SELECT id, stripe_id, status FROM billing.top_up_orders WHERE tenant_id = $1`, [tenantId]);
    expect(rows).toHaveLength(1);
    const intent = { id: rows[0].stripe_id, object: 'payment_intent', amount: 1000, amount_received: 1000, currency: 'usd', metadata: { purpose: 'auto_topup', order_id: rows[0].id, tenant_id: tenantId } };
    const event = delivery({ id: `evt_${randomUUID()}`, type: 'payment_intent.succeeded', data: { object: intent } });
    expect(await billing.client.handleStripeWebhook(event)).toMatchObject({ outcome: 'applied' });
    expect(await billing.client.handleStripeWebhook(event)).toMatchObject({ duplicate: true });
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS + 10_000_000n);
    expect(await billing.running.app.get(AutoTopUp).runOnce()).toBe(0); // above the threshold now
  });
});
