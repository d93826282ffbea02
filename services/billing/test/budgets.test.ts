import { randomUUID } from 'node:crypto';
import { createRedis, GrpcStatus, isServiceError, LOGGER, type Redis } from '@ai-platform/platform';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KillSwitch } from '../src/budgets/kill-switch';
import { periodBounds } from '../src/budgets/periods';
import { WebhookSender } from '../src/budgets/webhook-sender';
import { KafkaAlertSink, WebhookSink } from './support/alert-sinks';
import { expectSubjectHoldsInStep, MODEL, newTenant, publishUsage, startTestBilling, usageEvent, waitFor, type TestBilling } from './support/harness';

const WEBHOOK_SECRET = `whsec_${Buffer.from('budget-test-secret-0123456789').toString('base64')}`;
let billing: TestBilling;
let redis: Redis;
let kafkaAlerts: KafkaAlertSink;
let webhooks: WebhookSink;

beforeAll(async () => {
  webhooks = await WebhookSink.start(WEBHOOK_SECRET);
  billing = await startTestBilling({ REDIS_URL: process.env.REDIS_URL!, WEBHOOK_DELIVERY_INTERVAL_MS: '200', KILL_SWITCH_RECONCILE_MS: '500' });
  redis = createRedis(process.env.REDIS_URL!, { name: 'budget-test' });
  kafkaAlerts = await KafkaAlertSink.start(billing.kafka);
});

afterAll(async () => {
  await kafkaAlerts?.stop();
  redis?.disconnect();
  await billing?.close();
  await webhooks?.stop();
});

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isServiceError(error) && error.code === GrpcStatus.FAILED_PRECONDITION) return error.details;
    throw error;
  }
  throw new Error('expected Reserve to be refused');
}

/** Usage without a reservation that costs exactly `micros` (output tokens at 0.4 micro each). */
async function spend(tenantId: string, micros: number, who: { userId?: string; apiKeyId?: string } = {}) {
  const event = usageEvent({ tenantId, outputTokens: (micros * 10) / 4, ...who });
  await publishUsage(billing.publisher, event);
  await waitFor(`usage ${event.eventId}`, async () => (await billing.pool.query(`SELECT 1 FROM billing.usage_records WHERE event_id = $1`, [event.eventId])).rowCount === 1);
}

async function budgetOf(tenantId: string, scope = 'tenant') {
  const { budgets } = await billing.client.listBudgets({ tenantId });
  return budgets.find((budget) => budget.scope === scope)!;
}

const kinds = (alerts: Array<{ body: Record<string, unknown> }>) => alerts.map((a) => `${a.body.kind}:${a.body.thresholdPercent}`).sort();

describe('budgets, alerts and the kill switch', () => {
  it('alerts once per threshold per period on Kafka and by signed webhook, trips the switch at the hard limit, and an operator lifts it', async () => {
    const tenantId = newTenant();
    await billing.client.setTenantSettings({ tenantId, alertWebhookUrl: webhooks.url, alertWebhookSecret: WEBHOOK_SECRET });
    await billing.client.setBudget({ budget: { tenantId, scope: 'tenant', period: 'day', limitMicros: 1_000n, hardLimitPercent: 100 } });

    await spend(tenantId, 700); // 70%
    await spend(tenantId, 10); // still 71%: no second 70% alert
    await spend(tenantId, 200); // 91%
    expect(await budgetOf(tenantId)).toMatchObject({ spentMicros: 910n, tripped: false });
    // Under the hard limit a request that fits is admitted; one that does not is refused without tripping.
    const fits = await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 0, maxOutputTokens: 200 }); // 80 micros
    expect(await refusal(billing.client.reserve({ tenantId, model: MODEL, inputTokens: 0, maxOutputTokens: 50 }))).toMatch(/budget exceeded.*retry when requests in flight finish/);
    await billing.client.release({ reservationId: fits.reservationId });
    expect(await redis.exists(`billing:kill:${tenantId}`)).toBe(0);

    await spend(tenantId, 90); // exactly 100%: the hard limit
    const tripped = await budgetOf(tenantId);
    expect(tripped).toMatchObject({ spentMicros: 1_000n, tripped: true, lifted: false });
    // Reserve refuses even the smallest request, and the switch is broadcast to Redis until the period's end.
    expect(await refusal(billing.client.reserve({ tenantId, model: MODEL, inputTokens: 1, maxOutputTokens: 1 }))).toMatch(/kill switch is on/);
    const until = await waitFor('the Redis kill-switch key', async () => (await redis.get(`billing:kill:${tenantId}`)) ?? undefined, 10_000);
    expect(Number(until)).toBe(Number(tripped.periodEnd!.seconds) * 1000);
    expect(await redis.pttl(`billing:kill:${tenantId}`)).toBeGreaterThan(0);

    const expected = ['BILLING_ALERT_KIND_KILL_SWITCH:100', 'BILLING_ALERT_KIND_THRESHOLD:70', 'BILLING_ALERT_KIND_THRESHOLD:90'];
    await waitFor('three alerts on Kafka', async () => kafkaAlerts.of(tenantId).length >= 3);
    await waitFor('three webhooks', async () => webhooks.of(tenantId).length >= 3);
    await billing.running.app.get(WebhookSender).deliverDue(); // nothing left to deliver twice
    expect(kinds(kafkaAlerts.of(tenantId))).toEqual(expected);
    const hooks = webhooks.of(tenantId);
    expect(hooks.every((hook) => hook.verified)).toBe(true);
    expect(hooks.map((hook) => `${hook.body.data.kind}:${hook.body.data.thresholdPercent}`).sort()).toEqual(expected);
    expect(new Set(hooks.map((hook) => hook.id))).toEqual(new Set(kafkaAlerts.of(tenantId).map((alert) => alert.id)));
    const seventy = kafkaAlerts.of(tenantId).find((alert) => alert.body.thresholdPercent === 70)!;
    expect(seventy.body).toMatchObject({ tenantId, scope: 'tenant', period: 'day', limitMicros: '1000', spentMicros: '700' });

    // Operator lift: Reserve admits again, the Redis key is gone, a lifted alert goes out, more spend does not re-trip.
    expect((await billing.client.liftKillSwitch({ tenantId })).lifted).toBe(1);
    expect(await redis.exists(`billing:kill:${tenantId}`)).toBe(0);
    await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 1, maxOutputTokens: 1 });
    await spend(tenantId, 50);
    expect(await budgetOf(tenantId)).toMatchObject({ spentMicros: 1_050n, tripped: true, lifted: true });
    await billing.running.app.get(KillSwitch).reconcile();
    expect(await redis.exists(`billing:kill:${tenantId}`)).toBe(0);
    await waitFor('the lifted alert', async () => kafkaAlerts.of(tenantId).some((alert) => alert.body.kind === 'BILLING_ALERT_KIND_KILL_SWITCH_LIFTED'));
    expect(kafkaAlerts.of(tenantId)).toHaveLength(4);
    // Alerts' webhooks were each delivered once.
    await waitFor('the lifted webhook', async () => webhooks.of(tenantId).length >= 4);
    expect(webhooks.of(tenantId)).toHaveLength(4);
  });

  it('delivers each queued alert webhook once when several billing replicas deliver at the same time', async () => {
    const tenantId = newTenant();
    const ids = Array.from({ length: 30 }, () => `evt_${randomUUID()}`);
    await billing.pool.query(
      `INSERT INTO billing.webhook_deliveries (id, tenant_id, url, secret, body)
       SELECT id, $2, $3, $4, json_build_object('type', 'billing.alert', 'data', json_build_object('tenantId', $2::text, 'n', n))::text
         FROM unnest($1::text[]) WITH ORDINALITY AS t(id, n)`,
      [ids, tenantId, webhooks.url, WEBHOOK_SECRET],
    );
    const logger = billing.running.app.get(LOGGER);
    const replicas = [0, 1, 2].map(() => new WebhookSender(logger, billing.pool));
    for (const replica of replicas) replica.start(3_600_000);
    try {
      await Promise.all(replicas.flatMap((replica) => [replica.deliverDue(), replica.deliverDue()]));
      await Promise.all(replicas.map((replica) => replica.deliverDue()));
    } finally {
      await Promise.all(replicas.map((replica) => replica.stop()));
    }
    // The billing app's own sender is a fourth replica: rows it claimed during the
    // passes above are delivered by it, so wait until every row is recorded as delivered.
    const delivered = async () =>
      (await billing.pool.query(`SELECT count(*)::int AS n FROM billing.webhook_deliveries WHERE tenant_id = $1 AND delivered_at IS NOT NULL`, [tenantId])).rows[0].n;
    await waitFor('all 30 deliveries to be recorded', async () => (await delivered()) === 30);
    const received = webhooks.received.filter((hook) => hook.body.data.tenantId === tenantId);
    expect(received.map((hook) => hook.id).sort()).toEqual([...ids].sort()); // every one, none twice
    expect(received.every((hook) => hook.verified)).toBe(true);
    const { rows } = await billing.pool.query(`SELECT count(*)::int AS n FROM billing.webhook_deliveries WHERE tenant_id = $1 AND delivered_at IS NOT NULL AND attempts = 1`, [tenantId]);
    expect(rows[0].n).toBe(30);
  });

  it('lifts by itself at the next period, when thresholds alert afresh', async () => {
    const tenantId = newTenant();
    await billing.client.setBudget({ budget: { tenantId, scope: 'tenant', period: 'day', limitMicros: 1_000n, hardLimitPercent: 110 } });
    await spend(tenantId, 1_100); // 110% = this budget's hard limit
    expect(await budgetOf(tenantId)).toMatchObject({ tripped: true });
    expect(await refusal(billing.client.reserve({ tenantId, model: MODEL, inputTokens: 1, maxOutputTokens: 1 }))).toMatch(/kill switch is on/);
    await waitFor('the Redis kill-switch key', async () => (await redis.exists(`billing:kill:${tenantId}`)) === 1, 10_000);
    await waitFor('three alerts', async () => kafkaAlerts.of(tenantId).length >= 3);

    // The day ends: move this period into the past, as the clock would.
    await billing.pool.query(
      `UPDATE billing.budget_periods SET period_start = period_start - interval '1 day', period_end = period_end - interval '1 day' WHERE tenant_id = $1`,
      [tenantId],
    );
    await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 1, maxOutputTokens: 1 });
    const fresh = await budgetOf(tenantId);
    expect(fresh).toMatchObject({ spentMicros: 0n, tripped: false, lifted: false });
    await billing.running.app.get(KillSwitch).reconcile();
    expect(await redis.exists(`billing:kill:${tenantId}`)).toBe(0);
    await spend(tenantId, 700);
    // Raw messages here: the simulated new period shares today's date, hence the alert id (see below).
    const raw = () => kafkaAlerts.alerts.filter((alert) => alert.tenantId === tenantId && alert.body.thresholdPercent === 70);
    await waitFor('the new period 70% alert', async () => raw().some((alert) => alert.body.spentMicros === '700'));
    const seventies = [...new Map(raw().map((alert) => [alert.body.spentMicros, alert])).values()];
    // (Alert ids carry the period's start date; the simulated new period shares today's date, so only the figures tell them apart here.)
    expect(seventies.map((alert) => alert.body.spentMicros)).toEqual(['1100', '700']);
  });

  it('counts holds against a budget, so concurrent requests never exceed it, and trips when settled spend leaves too little', async () => {
    const tenantId = newTenant();
    await billing.client.setBudget({ budget: { tenantId, scope: 'tenant', period: 'month', limitMicros: 1_000n, hardLimitPercent: 100 } });
    // 30 concurrent requests of 100 micros each against a 1,000-micro budget: exactly 10 are admitted.
    const results = await Promise.allSettled(Array.from({ length: 30 }, () => billing.client.reserve({ tenantId, model: MODEL, inputTokens: 0, maxOutputTokens: 250 })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
    expect((await budgetOf(tenantId)).heldMicros).toBe(1_000n);
    expect((await budgetOf(tenantId)).tripped).toBe(false);

    await spend(tenantId, 960); // settled 960 of 1,000 (the holds stay open until usage or release)
    for (const result of results) if (result.status === 'fulfilled') await billing.client.release({ reservationId: result.value.reservationId });
    // 40 micros left; a 100-micro worst case can never fit now: the switch trips at once.
    expect(await refusal(billing.client.reserve({ tenantId, model: MODEL, inputTokens: 0, maxOutputTokens: 250 }))).toMatch(/kill switch is now on/);
    expect(await budgetOf(tenantId)).toMatchObject({ tripped: true, spentMicros: 960n });
    await waitFor('the Redis kill-switch key', async () => (await redis.exists(`billing:kill:${tenantId}`)) === 1, 10_000);
  });

  it('keeps open holds per user and key for budget checks: counted when the first budget arrives, followed through Reserve, release and usage, dropped with the last budget', async () => {
    const tenantId = newTenant();
    const reserve = (userId: string, apiKeyId: string) => billing.client.reserve({ tenantId, userId, apiKeyId, model: MODEL, inputTokens: 0, maxOutputTokens: 250 }); // 100 micros each
    const kept = async () =>
      (await billing.pool.query(`SELECT scope, subject, held_micros::text AS held FROM billing.budget_subject_holds WHERE tenant_id = $1 ORDER BY scope, subject`, [tenantId])).rows.map(
        (row) => `${row.scope}:${row.subject}=${row.held}`,
      );
    const alice = [await reserve('alice', 'key-1'), await reserve('alice', 'key-1'), await reserve('alice', 'key-2')];
    await reserve('bob', 'key-2');
    expect(await kept()).toEqual([]); // no budgets yet: nothing is kept, and Reserve paid nothing for it

    await billing.client.setBudget({ budget: { tenantId, scope: 'user', subject: 'alice', period: 'day', limitMicros: 450n } });
    expect(await kept()).toEqual(['api_key:key-1=200', 'api_key:key-2=200', 'user:alice=300', 'user:bob=100']);
    await reserve('alice', 'key-3'); // 300 held + 100 <= 450
    expect(await refusal(reserve('alice', 'key-3'))).toMatch(/user alice budget exceeded: .*held 0\.0004/);
    await reserve('bob', 'key-3'); // alice's budget does not bind bob
    expect(await kept()).toEqual(['api_key:key-1=200', 'api_key:key-2=200', 'api_key:key-3=200', 'user:alice=400', 'user:bob=200']);

    await billing.client.release({ reservationId: alice[0]!.reservationId });
    const usage = usageEvent({ tenantId, userId: 'alice', apiKeyId: 'key-1', reservationId: alice[1]!.reservationId, outputTokens: 100 }); // 40 micros
    await publishUsage(billing.publisher, usage);
    await waitFor('the usage of a held reservation', async () => (await billing.pool.query(`SELECT 1 FROM billing.usage_records WHERE event_id = $1`, [usage.eventId])).rowCount === 1);
    expect(await kept()).toEqual(['api_key:key-1=0', 'api_key:key-2=200', 'api_key:key-3=200', 'user:alice=200', 'user:bob=200']);
    await expectSubjectHoldsInStep(billing.pool, tenantId);

    // 40 spent + 200 held: two more of 100 fit under 450, whatever the concurrency.
    const burst = await Promise.allSettled(Array.from({ length: 30 }, () => reserve('alice', 'key-9')));
    expect(burst.filter((result) => result.status === 'fulfilled')).toHaveLength(2);
    expect(await kept()).toContain('user:alice=400');
    await expectSubjectHoldsInStep(billing.pool, tenantId);

    await billing.client.setBudget({ budget: { tenantId, scope: 'user', subject: 'alice', period: 'day', limitMicros: 1n }, delete: true });
    expect(await kept()).toEqual([]);
    await reserve('alice', 'key-9'); // no budget: the fast path, nothing kept
    expect(await kept()).toEqual([]);

    await billing.client.setBudget({ budget: { tenantId, scope: 'api_key', subject: 'key-9', period: 'month', limitMicros: 10_000n } });
    expect(await kept()).toContain('api_key:key-9=300');
    await expectSubjectHoldsInStep(billing.pool, tenantId);
    for (const statement of [
      `INSERT INTO billing.budget_subject_holds (tenant_id, scope, subject, held_micros) VALUES ($1, 'user', 'mallory', 0)`,
      `UPDATE billing.budget_subject_holds SET held_micros = 0 WHERE tenant_id = $1`,
      `DELETE FROM billing.budget_subject_holds WHERE tenant_id = $1`,
    ]) {
      await expect(billing.pool.query(statement, [tenantId])).rejects.toThrow(/derived from reservations/);
    }
    expect(await kept()).toContain('api_key:key-9=300');
  });

  it("admits in Reserve's one round trip exactly what the full budget check admits, and leaves every refusal to it", async () => {
    const tenantId = newTenant();
    await billing.client.setBudget({ budget: { tenantId, scope: 'user', subject: 'alice', period: 'day', limitMicros: 250n } });
    // A limit whose hard limit (110%) is past the range of bigint: checked without overflow.
    await billing.client.setBudget({ budget: { tenantId, scope: 'tenant', period: 'month', limitMicros: 9_223_372_036_854_775_000n, hardLimitPercent: 110 } });
    const day = periodBounds('day');
    const month = periodBounds('month');
    // billing.reserve_hold as the service calls it: 100 micros worst case.
    const fast = async (userId: string, periods: Array<Date | null> = [day.start, month.start]) =>
      (
        await billing.pool.query(`SELECT outcome, reservation_id FROM billing.reserve_hold($1, $2, 'key-1', $3, $4, 0, 250, 100000, 25000, 400000, 100, 60, NULL, $5, $6)`, [
          tenantId, userId, randomUUID(), MODEL, ...periods,
        ])
      ).rows[0] as { outcome: string; reservation_id: string | null };
    const held = [await fast('alice'), await fast('alice')];
    expect(held.map((row) => row.outcome)).toEqual(['held', 'held']);
    expect((await fast('alice')).outcome).toBe('budgets'); // 200 held + 100 > 250
    expect(await refusal(billing.client.reserve({ tenantId, userId: 'alice', apiKeyId: 'key-1', model: MODEL, inputTokens: 0, maxOutputTokens: 250 }))).toMatch(
      /user alice budget exceeded: .* has 0\.000050 credits left .*held 0\.000200 credits/,
    );
    expect((await fast('bob')).outcome).toBe('held'); // only the tenant budget binds bob
    expect((await fast('bob', [null, null])).outcome).toBe('budgets'); // a caller without periods (the previous version)

    for (const row of held) await billing.client.release({ reservationId: row.reservation_id! });
    await billing.pool.query(
      `INSERT INTO billing.budget_periods (budget_id, period_start, period_end, tenant_id, tripped_at)
       SELECT id, $2, $3, tenant_id, now() FROM billing.budgets WHERE tenant_id = $1 AND scope = 'user'`,
      [tenantId, day.start, day.end],
    );
    expect((await fast('alice')).outcome).toBe('budgets'); // tripped, though the holds would fit
    expect(await refusal(billing.client.reserve({ tenantId, userId: 'alice', apiKeyId: 'key-1', model: MODEL, inputTokens: 0, maxOutputTokens: 250 }))).toMatch(/user alice budget kill switch is on/);

    expect((await billing.client.liftKillSwitch({ tenantId, scope: 'user', subject: 'alice' })).lifted).toBe(1);
    // Lifted for the rest of the period: the budget no longer binds, on either path.
    expect([(await fast('alice')).outcome, (await fast('alice')).outcome, (await fast('alice')).outcome]).toEqual(['held', 'held', 'held']);
    await billing.client.reserve({ tenantId, userId: 'alice', apiKeyId: 'key-1', model: MODEL, inputTokens: 0, maxOutputTokens: 250 });
    await expectSubjectHoldsInStep(billing.pool, tenantId);
  });

  it('applies user and API key budgets to their own requests only', async () => {
    const tenantId = newTenant();
    await billing.client.setBudget({ budget: { tenantId, scope: 'user', subject: 'alice', period: 'day', limitMicros: 500n } });
    await billing.client.setBudget({ budget: { tenantId, scope: 'api_key', subject: 'key-1', period: 'day', limitMicros: 300n } });
    await spend(tenantId, 300, { userId: 'bob', apiKeyId: 'key-1' }); // key-1 at its hard limit
    await spend(tenantId, 500, { userId: 'alice', apiKeyId: 'key-2' }); // alice at hers
    expect(await refusal(billing.client.reserve({ tenantId, userId: 'bob', apiKeyId: 'key-1', model: MODEL, inputTokens: 1, maxOutputTokens: 1 }))).toMatch(/api_key key-1 budget kill switch is on/);
    expect(await refusal(billing.client.reserve({ tenantId, userId: 'alice', apiKeyId: 'key-3', model: MODEL, inputTokens: 1, maxOutputTokens: 1 }))).toMatch(/user alice budget kill switch is on/);
    await billing.client.reserve({ tenantId, userId: 'bob', apiKeyId: 'key-2', model: MODEL, inputTokens: 1, maxOutputTokens: 1 });
    await waitFor('both scoped Redis keys', async () => (await redis.exists(`billing:kill:${tenantId}:api_key:key-1`, `billing:kill:${tenantId}:user:alice`)) === 2, 10_000);
    expect(await redis.exists(`billing:kill:${tenantId}`)).toBe(0);
    // Lifting one scope leaves the other on.
    expect((await billing.client.liftKillSwitch({ tenantId, scope: 'api_key', subject: 'key-1' })).lifted).toBe(1);
    await billing.client.reserve({ tenantId, userId: 'bob', apiKeyId: 'key-1', model: MODEL, inputTokens: 1, maxOutputTokens: 1 });
    expect(await refusal(billing.client.reserve({ tenantId, userId: 'alice', apiKeyId: 'key-2', model: MODEL, inputTokens: 1, maxOutputTokens: 1 }))).toMatch(/kill switch is on/);
  });
});
