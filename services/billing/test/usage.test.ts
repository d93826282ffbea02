import { randomUUID } from 'node:crypto';
import { toBinary, toJsonString } from '@bufbuild/protobuf';
import { EventTypes, events } from '@ai-platform/contracts';
import { headerValue } from '@ai-platform/platform';
import type { Consumer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_POOL } from '../src/infra/tokens';
import { ExpirySweeper } from '../src/reservations/expiry-sweeper';
import {
  balanceOf,
  GRANT_MICROS,
  heldOf,
  ledgerTransactions,
  MODEL,
  newTenant,
  publishRaw,
  publishUsage,
  reservationRow,
  startTestBilling,
  usageEvent,
  waitFor,
  type TestBilling,
  USAGE_DLQ_TOPIC,
  USAGE_TOPIC,
} from './support/harness';

let billing: TestBilling;
let dlqConsumer: Consumer;
const deadLetters = new Map<string, { reason?: string; key?: string; value: string }>();

beforeAll(async () => {
  billing = await startTestBilling();
  dlqConsumer = billing.kafka.consumer({ groupId: `billing-test-dlq-${randomUUID()}` });
  await dlqConsumer.connect();
  await dlqConsumer.subscribe({ topic: USAGE_DLQ_TOPIC, fromBeginning: true });
  await dlqConsumer.run({
    eachMessage: async ({ message }) => {
      const id = headerValue(message.headers, 'ce_id');
      if (id) deadLetters.set(id, { reason: headerValue(message.headers, 'ce_deadletterreason'), key: message.key?.toString(), value: message.value?.toString() ?? '' });
    },
  });
});

afterAll(async () => {
  await dlqConsumer?.disconnect();
  await billing?.close();
});

async function usageRecord(eventId: string) {
  const { rows } = await billing.pool.query(`SELECT * FROM billing.usage_records WHERE event_id = $1`, [eventId]);
  return rows[0] as Record<string, unknown> | undefined;
}

const recorded = (eventId: string) => waitFor(`usage record of ${eventId}`, () => usageRecord(eventId));

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** `batch:<settled at, RFC 3339 in ms>:<first event id>`. */
const batchReference = (eventId: string) => expect.stringMatching(new RegExp(`^batch:\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z:${eventId}$`));

describe('usage events', () => {
  it('a usage event settles its reservation at the price-table cost and writes a balanced ledger transaction', async () => {
    const tenantId = newTenant();
    const reservation = await billing.client.reserve({ tenantId, userId: 'u', requestId: 'req-1', model: MODEL, inputTokens: 1_000, maxOutputTokens: 1_000 });
    expect(reservation.amountMicros).toBe(500n);

    // 800 uncached input at 0.1, 200 cached at 0.025, 300 output at 0.4 credit/M = 80 + 5 + 120 micros.
    const event = usageEvent({ tenantId, userId: 'u', requestId: 'req-1', reservationId: reservation.reservationId, inputTokens: 1_000, cachedInputTokens: 200, outputTokens: 300, costMicros: 999_999n });
    await publishUsage(billing.publisher, event);

    const row = await waitFor('reservation settled', async () => {
      const current = await reservationRow(billing.pool, reservation.reservationId);
      return current?.status === 'settled' ? current : undefined;
    });
    expect(row.settled_micros).toBe('205');
    expect(await usageRecord(event.eventId)).toMatchObject({
      tenant_id: tenantId, reservation_id: reservation.reservationId, model: MODEL, input_tokens: 1_000, cached_input_tokens: 200, output_tokens: 300,
      cost_micros: '205', reported_cost_micros: '999999', balance_change_micros: '-205', status: 'completed',
    });
    const usage = (await ledgerTransactions(billing.pool, tenantId)).filter((t) => t.kind === 'usage');
    // One ledger transaction per tenant per consumer batch, named after the time it was settled and its first event.
    expect(usage).toEqual([expect.objectContaining({ reference: batchReference(event.eventId), entries: [-205n, 205n] })]);
    // Time-ordered ids (uuid v7): the chunk's transactions, the sign-up grant's (the database's
    // default) and the reservation's land on the right edge of their indexes.
    for (const id of [usage[0]!.id, ...(await ledgerTransactions(billing.pool, tenantId)).map((t) => t.id), reservation.reservationId]) expect(id).toMatch(UUID_V7);
    const ids = (await ledgerTransactions(billing.pool, tenantId)).map((t) => t.id);
    expect(ids).toEqual([...ids].sort()); // made in this order: the grant first, then the usage
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 205n);
    expect(await heldOf(billing.pool, tenantId)).toBe(0n);

    // A settled reservation cannot be released any more.
    expect(await billing.client.release({ reservationId: reservation.reservationId, reason: 'late' })).toMatchObject({ released: false });
  });

  it('the same event delivered twice (same ce_id) is billed once', async () => {
    const tenantId = newTenant();
    const reservation = await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 100, maxOutputTokens: 100 });
    const event = usageEvent({ tenantId, reservationId: reservation.reservationId, inputTokens: 100, outputTokens: 50 }); // 10 + 20 micros
    await publishUsage(billing.publisher, event);
    await publishUsage(billing.publisher, event);
    // Same key, same partition: once the sentinel is in, both copies have been handled.
    const sentinel = usageEvent({ tenantId, inputTokens: 10, outputTokens: 0 }); // 1 micro
    await publishUsage(billing.publisher, sentinel);
    await recorded(sentinel.eventId);

    const charges = (await ledgerTransactions(billing.pool, tenantId)).filter((t) => t.kind === 'usage');
    expect(charges.map((t) => t.reference)).toEqual(expect.arrayContaining([batchReference(event.eventId), batchReference(sentinel.eventId)]));
    expect(charges).toHaveLength(2);
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 30n - 1n);
    const { rows } = await billing.pool.query(`SELECT count(*)::int AS n FROM billing.usage_records WHERE event_id = $1`, [event.eventId]);
    expect(rows).toEqual([{ n: 1 }]); // the unique event id in usage_records is what makes the copy a no-op
    const parked = await billing.pool.query(`SELECT 1 FROM billing.processed_events WHERE consumer_group = $1 AND event_id = $2`, [billing.running.config.KAFKA_CONSUMER_GROUP, event.eventId]);
    expect(parked.rowCount).toBe(0); // only poison messages are remembered there
  });

  it('the same event_id republished without a ce_id (a different message id) is still billed once', async () => {
    const tenantId = newTenant();
    const event = usageEvent({ tenantId, inputTokens: 0, outputTokens: 100 }); // 40 micros
    const producer = billing.kafka.producer();
    await producer.connect();
    try {
      const message = { key: tenantId, value: toJsonString(events.UsageEventSchema, event), headers: { 'content-type': 'application/json' } };
      await producer.send({ topic: USAGE_TOPIC, messages: [message, message] });
    } finally {
      await producer.disconnect();
    }
    const sentinel = usageEvent({ tenantId, inputTokens: 10, outputTokens: 0 });
    await publishUsage(billing.publisher, sentinel);
    await recorded(sentinel.eventId);
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 40n - 1n);
  });

  it('binary protobuf payloads are accepted too', async () => {
    const tenantId = newTenant();
    const event = usageEvent({ tenantId, inputTokens: 0, outputTokens: 10 }); // 4 micros
    await billing.publisher.publish(USAGE_TOPIC, [
      { id: event.eventId, type: EventTypes.usageRecorded, source: 'billing-test', key: tenantId, data: Buffer.from(toBinary(events.UsageEventSchema, event)), contentType: 'application/protobuf' },
    ]);
    await recorded(event.eventId);
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 4n);
  });

  it('aborted and failed calls bill the tokens they report; usage without a reservation is billed at cost', async () => {
    const tenantId = newTenant(); // never reserved: its account and grant are created by the first event
    const aborted = usageEvent({ tenantId, status: events.UsageStatus.ABORTED, inputTokens: 1_000, outputTokens: 25 }); // 100 + 10
    const failed = usageEvent({ tenantId, status: events.UsageStatus.FAILED, inputTokens: 500, outputTokens: 0 }); // 50
    await publishUsage(billing.publisher, aborted);
    await publishUsage(billing.publisher, failed);
    await recorded(failed.eventId);
    expect(await usageRecord(aborted.eventId)).toMatchObject({ status: 'aborted', cost_micros: '110', reservation_id: null });
    expect(await usageRecord(failed.eventId)).toMatchObject({ status: 'failed', cost_micros: '50' });
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 160n);
  });

  it('a second model call under a settled reservation is charged its own cost, never the hold', async () => {
    const tenantId = newTenant();
    const reservation = await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 1_000, maxOutputTokens: 10_000 }); // hold 4,100
    const first = usageEvent({ tenantId, reservationId: reservation.reservationId, inputTokens: 1_000, outputTokens: 100 }); // 140
    const second = usageEvent({ tenantId, reservationId: reservation.reservationId, inputTokens: 1_000, outputTokens: 200 }); // 180
    await publishUsage(billing.publisher, first);
    await publishUsage(billing.publisher, second);
    await recorded(second.eventId);
    const row = await reservationRow(billing.pool, reservation.reservationId);
    expect(row).toMatchObject({ status: 'settled', settled_micros: '320' });
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 320n);
    expect(await heldOf(billing.pool, tenantId)).toBe(0n);
  });

  it('a usage event whose reservation id matches none of its tenant is billed without touching that reservation', async () => {
    const owner = newTenant();
    const other = newTenant();
    const reservation = await billing.client.reserve({ tenantId: owner, model: MODEL, inputTokens: 10, maxOutputTokens: 10 });
    const event = usageEvent({ tenantId: other, reservationId: reservation.reservationId, inputTokens: 0, outputTokens: 10 }); // 4
    await publishUsage(billing.publisher, event);
    expect(await recorded(event.eventId)).toMatchObject({ reservation_id: null, reservation_ref: reservation.reservationId, cost_micros: '4' });
    expect((await reservationRow(billing.pool, reservation.reservationId))?.status).toBe('held');
    expect(await balanceOf(billing.pool, other)).toBe(GRANT_MICROS - 4n);
    expect(await balanceOf(billing.pool, owner)).toBe(GRANT_MICROS);
  });
});

describe('poison events', () => {
  it('malformed JSON, unknown models and invalid token counts go to the dead-letter topic, move no money, and the consumer goes on', async () => {
    const tenantId = newTenant();
    const malformed = randomUUID();
    const unknownModel = usageEvent({ tenantId, model: 'no-such-model', inputTokens: 10, outputTokens: 10 });
    const negative = randomUUID();
    const tooMany = usageEvent({ tenantId, inputTokens: 10, outputTokens: 50_000_000 });
    const cachedAboveInput = usageEvent({ tenantId, inputTokens: 10, cachedInputTokens: 20, outputTokens: 1 });
    const noTenant = usageEvent({ tenantId: '', inputTokens: 1, outputTokens: 1 });
    const negativeJson = JSON.stringify({ eventId: negative, tenantId, model: MODEL, inputTokens: -5, outputTokens: 10 });

    await publishRaw(billing.publisher, { id: malformed, key: tenantId, data: '{"eventId": "oops", not json' });
    await publishUsage(billing.publisher, unknownModel);
    await publishRaw(billing.publisher, { id: negative, key: tenantId, data: negativeJson });
    await publishUsage(billing.publisher, tooMany);
    await publishUsage(billing.publisher, cachedAboveInput);
    await billing.publisher.publish(USAGE_TOPIC, [
      { id: noTenant.eventId, type: EventTypes.usageRecorded, source: 'billing-test', key: tenantId, data: toJsonString(events.UsageEventSchema, noTenant) },
    ]);
    // A valid event behind them on the same partition.
    const valid = usageEvent({ tenantId, inputTokens: 0, outputTokens: 10 }); // 4 micros
    await publishUsage(billing.publisher, valid);

    const expected: Array<[string, RegExp]> = [
      [malformed, /not a valid UsageEvent/],
      [unknownModel.eventId, /unknown model "no-such-model"/],
      [negative, /not a valid UsageEvent.*input_tokens|inputTokens/],
      [tooMany.eventId, /output_tokens must be an integer between 0 and 10000000/],
      [cachedAboveInput.eventId, /cached_input_tokens \(20\) exceeds input_tokens \(10\)/],
      [noTenant.eventId, /tenant_id is missing/],
    ];
    await waitFor('dead letters', async () => expected.every(([id]) => deadLetters.has(id)));
    for (const [id, reason] of expected) {
      const letter = deadLetters.get(id)!;
      expect(letter.reason, id).toMatch(reason);
      expect(letter.key).toBe(tenantId);
    }
    expect(deadLetters.get(malformed)!.value).toBe('{"eventId": "oops", not json'); // parked as it came

    await recorded(valid.eventId); // the consumer went on
    for (const [id] of expected) expect(await usageRecord(id)).toBeUndefined();
    const { rows } = await billing.pool.query(
      `SELECT event_id, outcome FROM billing.processed_events WHERE consumer_group = $1 AND event_id = ANY($2) ORDER BY event_id`,
      [billing.running.config.KAFKA_CONSUMER_GROUP, expected.map(([id]) => id)],
    );
    expect(rows).toHaveLength(expected.length);
    expect(rows.every((row) => row.outcome === 'dead_lettered')).toBe(true);
    // Only the valid event moved money.
    const transactions = await ledgerTransactions(billing.pool, tenantId);
    expect(transactions.map((t) => t.kind).sort()).toEqual(['signup_grant', 'usage']);
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 4n);
  });
});

describe('reservation expiry', () => {
  async function expire(reservationId: string) {
    await billing.pool.query(`UPDATE billing.reservations SET expires_at = now() - interval '1 second' WHERE id = $1`, [reservationId]);
    const sweeper = billing.running.app.get(ExpirySweeper);
    await sweeper.sweepOnce();
    return sweeper;
  }

  it('an expired hold is charged in full; a late usage event refunds the difference so the final charge is the actual cost', async () => {
    const tenantId = newTenant();
    const reservation = await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 1_000, maxOutputTokens: 1_000 }); // 500
    const untouched = await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 1, maxOutputTokens: 1 }); // not due
    const sweeper = await expire(reservation.reservationId);

    expect(await reservationRow(billing.pool, reservation.reservationId)).toMatchObject({ status: 'expired', settled_micros: '500' });
    expect((await reservationRow(billing.pool, untouched.reservationId))?.status).toBe('held');
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 500n);
    const expiry = (await ledgerTransactions(billing.pool, tenantId)).filter((t) => t.kind === 'reservation_expiry');
    expect(expiry).toEqual([expect.objectContaining({ reference: reservation.reservationId, entries: [-500n, 500n] })]);
    // Sweeping again changes nothing, and an expired hold cannot be released.
    await sweeper.sweepOnce();
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 500n);
    expect(await billing.client.release({ reservationId: reservation.reservationId, reason: 'too late' })).toMatchObject({ released: false });

    const late = usageEvent({ tenantId, reservationId: reservation.reservationId, inputTokens: 1_000, outputTokens: 300 }); // 100 + 120
    await publishUsage(billing.publisher, late);
    expect(await recorded(late.eventId)).toMatchObject({ cost_micros: '220', balance_change_micros: '280' });
    expect(await reservationRow(billing.pool, reservation.reservationId)).toMatchObject({ status: 'expired', settled_micros: '220' });
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 220n);
    const adjustment = (await ledgerTransactions(billing.pool, tenantId)).filter((t) => t.kind === 'expiry_adjustment');
    expect(adjustment).toEqual([expect.objectContaining({ reference: late.eventId, entries: [-280n, 280n] })]);

    // The same late event again: nothing changes.
    await publishUsage(billing.publisher, late);
    const sentinel = usageEvent({ tenantId, inputTokens: 10, outputTokens: 0 }); // 1
    await publishUsage(billing.publisher, sentinel);
    await recorded(sentinel.eventId);
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 220n - 1n);
  });

  it('late usage above the expired hold is charged up to the actual cost', async () => {
    const tenantId = newTenant();
    const reservation = await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 10, maxOutputTokens: 10 }); // 1 + 4
    await expire(reservation.reservationId);
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 5n);
    const late = usageEvent({ tenantId, reservationId: reservation.reservationId, inputTokens: 10, outputTokens: 1_000 }); // 1 + 400
    await publishUsage(billing.publisher, late);
    expect(await recorded(late.eventId)).toMatchObject({ cost_micros: '401', balance_change_micros: '-396' });
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS - 401n);
  });
});

describe('derived balances', () => {
  it('keeps every tenant account\'s balance_micros equal to the sum of its entries, and refuses writes that bypass the ledger', async () => {
    // Every flow above (grants, batched usage, duplicates, expiry charges and refunds) has run by now.
    const { rows } = await billing.pool.query(
      `SELECT a.tenant_id, a.balance_micros::text AS kept, coalesce(sum(e.amount_micros), 0)::text AS summed
         FROM billing.accounts a LEFT JOIN billing.ledger_entries e ON e.account_id = a.id
        WHERE a.kind = 'tenant' GROUP BY a.id`,
    );
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.filter((row) => row.kept !== row.summed)).toEqual([]);
    expect(rows.some((row) => row.kept !== String(GRANT_MICROS))).toBe(true);

    const tenantId = rows[0].tenant_id as string;
    await expect(billing.pool.query(`UPDATE billing.accounts SET balance_micros = balance_micros + 1000000 WHERE tenant_id = $1`, [tenantId])).rejects.toThrow(/derived/);
    await expect(billing.pool.query(`INSERT INTO billing.accounts (kind, tenant_id, balance_micros) VALUES ('tenant', $1, 5)`, [newTenant()])).rejects.toThrow(/derived/);
    const after = await billing.pool.query(`SELECT balance_micros::text AS kept FROM billing.accounts WHERE tenant_id = $1`, [tenantId]);
    expect(after.rows[0].kept).toBe(rows[0].kept);
  });

  it('updates balances by probing accounts by id, whatever the size of the statement (migration 014)', async () => {
    const { rows } = await billing.pool.query<{ proconfig: string[] }>(
      `SELECT proconfig FROM pg_proc WHERE oid = 'billing.ledger_entries_apply_to_balances'::regproc`);
    expect(rows[0]?.proconfig).toEqual(expect.arrayContaining(['enable_seqscan=off', 'enable_hashjoin=off', 'enable_mergejoin=off']));
    // The plan that setting leaves for the trigger's join of a handful of entries with accounts.
    const client = await billing.pool.connect();
    try {
      await client.query('BEGIN');
      for (const setting of rows[0]!.proconfig.filter((entry) => entry.startsWith('enable_'))) await client.query(`SET LOCAL ${setting.replace('=', ' = ')}`);
      const { rows: plan } = await client.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN UPDATE billing.accounts a SET balance_micros = a.balance_micros + d.delta
           FROM (SELECT account_id, sum(amount) AS delta FROM (VALUES ('00000000-0000-0000-0000-000000000000'::uuid, 1::bigint)) AS e(account_id, amount) GROUP BY account_id) d
          WHERE a.id = d.account_id AND a.kind = 'tenant' AND d.delta <> 0`);
      const text = plan.map((row) => row['QUERY PLAN']).join('\n');
      expect(text).toMatch(/Index Scan using accounts_pkey/);
      expect(text).not.toMatch(/Seq Scan on accounts/);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  it('keeps held_micros on the account row equal to the open holds through reserve, release, settlement and expiry, and refuses writes that bypass reservations', async () => {
    const tenantId = newTenant();
    const holds = [];
    for (let i = 0; i < 5; i++) holds.push(await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 1_000, maxOutputTokens: 1_000 })); // 500 each
    expect(await heldOf(billing.pool, tenantId)).toBe(2_500n);
    // An answer that counts the hold of this very call: available = balance − open holds.
    expect(holds[4]!.availableMicros).toBe(GRANT_MICROS - 2_500n);

    await billing.client.release({ reservationId: holds[0]!.reservationId, reason: 'client went away' });
    await billing.client.release({ reservationId: holds[0]!.reservationId, reason: 'again' }); // idempotent: no second change
    expect(await heldOf(billing.pool, tenantId)).toBe(2_000n);

    // Two settled in one consumer batch, one alone; an event for an already settled reservation changes no hold.
    const settle = [holds[1]!, holds[2]!].map((hold) => usageEvent({ tenantId, reservationId: hold.reservationId, inputTokens: 1_000, outputTokens: 10 }));
    for (const event of settle) await publishUsage(billing.publisher, event);
    const again = usageEvent({ tenantId, reservationId: holds[1]!.reservationId, inputTokens: 10, outputTokens: 0 });
    await publishUsage(billing.publisher, again);
    for (const event of [...settle, again]) await recorded(event.eventId);
    expect(await heldOf(billing.pool, tenantId)).toBe(1_000n);

    await billing.pool.query(`UPDATE billing.reservations SET expires_at = now() - interval '1 second' WHERE id = $1`, [holds[3]!.reservationId]);
    await billing.running.app.get(ExpirySweeper).sweepOnce();
    expect(await reservationRow(billing.pool, holds[3]!.reservationId)).toMatchObject({ status: 'expired' });
    expect(await heldOf(billing.pool, tenantId)).toBe(500n);

    // The open holds count against the balance: only what is left fits.
    const { rows: position } = await billing.pool.query(`SELECT balance_micros::text AS balance FROM billing.accounts WHERE tenant_id = $1`, [tenantId]);
    const available = BigInt(position[0].balance) - 500n;
    const refused = await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 0, maxOutputTokens: Number((available * 10n) / 4n) + 10 }).then(() => 'held', (error: Error) => error.message);
    expect(refused).toMatch(/insufficient credit/);
    const fits = await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 0, maxOutputTokens: Number((available * 10n) / 4n) - 10 });
    expect(fits.availableMicros).toBeGreaterThanOrEqual(0n);
    expect(await heldOf(billing.pool, tenantId)).toBe(500n + fits.amountMicros);

    // Written only by the database: not by a client statement, not at insert, never negative, never without an account.
    const before = await heldOf(billing.pool, tenantId);
    await expect(billing.pool.query(`UPDATE billing.accounts SET held_micros = 0 WHERE tenant_id = $1`, [tenantId])).rejects.toThrow(/derived from reservations/);
    await expect(billing.pool.query(`INSERT INTO billing.accounts (kind, tenant_id, held_micros) VALUES ('tenant', $1, 5)`, [newTenant()])).rejects.toThrow(/derived from reservations/);
    await expect(
      billing.pool.query(
        `INSERT INTO billing.reservations (tenant_id, model, input_tokens, max_output_tokens, input_price_micros, cached_input_price_micros, output_price_micros, amount_micros, expires_at)
         VALUES ($1, $2, 1, 1, 0, 0, 0, 7, now() + interval '1 minute')`,
        [newTenant(), MODEL],
      ),
    ).rejects.toThrow(/needs its tenant's account/);
    expect(await heldOf(billing.pool, tenantId)).toBe(before);
  });
});

describe('operations', () => {
  it('is ready when Postgres answers and the consumer runs; shutdown stops the consumer and closes the pool', async () => {
    const response = await fetch(`${billing.running.httpUrl}/readyz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', 'usage-consumer': 'ok' } });

    const pool = billing.running.app.get<{ ended: boolean }>(PG_POOL);
    await billing.running.shutdown('test');
    expect(pool.ended).toBe(true);
  });
});
