import { randomUUID } from 'node:crypto';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { GrpcStatus, isServiceError } from '@ai-platform/platform';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { balanceOf, GRANT_MICROS, heldOf, ledgerTransactions, MODEL, newTenant, reservationRow, startTestBilling, type TestBilling } from './support/harness';

let billing: TestBilling;

beforeAll(async () => {
  billing = await startTestBilling();
});

afterAll(async () => {
  await billing?.close();
});

async function grpcError(promise: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await promise;
  } catch (error) {
    if (isServiceError(error)) return { code: error.code, details: error.details };
    throw error;
  }
  throw new Error('expected the call to fail');
}

describe('Reserve', () => {
  it('creates the account with its sign-up grant and holds the worst-case cost', async () => {
    const tenantId = newTenant();
    const before = Date.now();
    const response = await billing.client.reserve({ tenantId, userId: 'u1', apiKeyId: 'k1', requestId: 'r1', model: MODEL, inputTokens: 1_000, maxOutputTokens: 1_000 });
    // 1000 input at 0.1 credit/M + 1000 output at 0.4 credit/M = 100 + 400 micros
    expect(response.amountMicros).toBe(500n);
    expect(response.availableMicros).toBe(GRANT_MICROS - 500n);
    const expiresAt = timestampDate(response.expiresAt!).getTime();
    expect(expiresAt).toBeGreaterThanOrEqual(before + 600_000 - 5_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 600_000 + 5_000);

    const row = await reservationRow(billing.pool, response.reservationId);
    expect(row).toMatchObject({ status: 'held', amount_micros: '500', settled_micros: '0' });
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS);
    expect(await heldOf(billing.pool, tenantId)).toBe(500n);
    const transactions = await ledgerTransactions(billing.pool, tenantId);
    expect(transactions).toHaveLength(1);
    expect(transactions[0]).toMatchObject({ kind: 'signup_grant', reference: tenantId, entries: [-GRANT_MICROS, GRANT_MICROS] });

    // A second reserve reuses the account: still one grant.
    const second = await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 10, maxOutputTokens: 10 });
    expect(second.availableMicros).toBe(GRANT_MICROS - 500n - second.amountMicros);
    expect((await ledgerTransactions(billing.pool, tenantId)).filter((t) => t.kind === 'signup_grant')).toHaveLength(1);
  });

  it('refuses a request credit does not cover with FAILED_PRECONDITION and says why', async () => {
    const tenantId = newTenant();
    const error = await grpcError(billing.client.reserve({ tenantId, model: MODEL, inputTokens: 0, maxOutputTokens: 5_000_000 }));
    expect(error.code).toBe(GrpcStatus.FAILED_PRECONDITION);
    expect(error.details).toContain('insufficient credit');
    expect(error.details).toContain('2.000000 credits'); // required: 5M output tokens at 0.4 credit/M
    expect(error.details).toContain('balance 1.000000 credits');
    expect(error.details).toMatch(/top up/i);
    // The refusal rolled back everything, the lazily created account included.
    expect(await heldOf(billing.pool, tenantId)).toBe(0n);
    expect(await ledgerTransactions(billing.pool, tenantId)).toEqual([]);

    // A tenant with open holds is refused what exceeds balance − holds.
    const held = await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 0, maxOutputTokens: 2_000_000 }); // 0.8 credit
    expect(held.availableMicros).toBe(200_000n);
    const second = await grpcError(billing.client.reserve({ tenantId, model: MODEL, inputTokens: 0, maxOutputTokens: 600_000 })); // 0.24 credit
    expect(second.code).toBe(GrpcStatus.FAILED_PRECONDITION);
    expect(second.details).toContain('only 0.200000 credits (200000 micros) is available');
    expect(second.details).toContain('0.800000 credits held by requests in flight');
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS);
  });

  it('rejects invalid requests with INVALID_ARGUMENT', async () => {
    const cases = [
      [{ tenantId: '', model: MODEL, inputTokens: 1, maxOutputTokens: 1 }, /tenant_id is required/],
      [{ tenantId: newTenant(), model: 'no-such-model', inputTokens: 1, maxOutputTokens: 1 }, /unknown model/],
      [{ tenantId: newTenant(), model: '', inputTokens: 1, maxOutputTokens: 1 }, /model is required/],
      [{ tenantId: newTenant(), model: MODEL, inputTokens: 50_000_000, maxOutputTokens: 1 }, /input_tokens/],
      [{ tenantId: newTenant(), model: MODEL, inputTokens: 1, maxOutputTokens: 4_000_000_000 }, /max_output_tokens/],
      [{ tenantId: 'x'.repeat(300), model: MODEL, inputTokens: 1, maxOutputTokens: 1 }, /tenant_id must be at most/],
    ] as const;
    for (const [request, message] of cases) {
      const error = await grpcError(billing.client.reserve(request));
      expect(error.code, JSON.stringify(request).slice(0, 80)).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(error.details).toMatch(message);
    }
  });

  it('refuses a tenant_id other than the caller context tenant', async () => {
    const error = await grpcError(
      billing.client.reserve({ tenantId: newTenant(), model: MODEL, inputTokens: 1, maxOutputTokens: 1 }, { context: { tenantId: newTenant() } }),
    );
    expect(error.code).toBe(GrpcStatus.PERMISSION_DENIED);
  });

  it('admits exactly the affordable number of 200 parallel reserves and never overspends', async () => {
    const tenantId = newTenant(); // first seen by these calls: the account creation races too
    // 125,000 output tokens at 0.4 credit/M = 50,000 micros: the 1-credit grant covers 20.
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, index) =>
        billing.client.reserve({ tenantId, requestId: `req-${index}`, model: MODEL, inputTokens: 0, maxOutputTokens: 125_000 }, { timeoutMs: 60_000 }),
      ),
    );
    const admitted = results.filter((result) => result.status === 'fulfilled');
    const refused = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
    expect(admitted).toHaveLength(20);
    expect(refused).toHaveLength(180);
    for (const failure of refused) expect((failure.reason as { code: number }).code).toBe(GrpcStatus.FAILED_PRECONDITION);

    const availableAfter = admitted.map((result) => (result as PromiseFulfilledResult<{ availableMicros: bigint }>).value.availableMicros);
    expect(availableAfter.every((value) => value >= 0n)).toBe(true);
    expect(availableAfter).toContain(0n);
    expect(new Set(availableAfter).size).toBe(20); // each admission saw the holds before it

    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS);
    expect(await heldOf(billing.pool, tenantId)).toBe(GRANT_MICROS);
    expect((await ledgerTransactions(billing.pool, tenantId)).filter((t) => t.kind === 'signup_grant')).toHaveLength(1);
    const accounts = await billing.pool.query(`SELECT count(*)::int AS n FROM billing.accounts WHERE tenant_id = $1`, [tenantId]);
    expect(accounts.rows[0].n).toBe(1);

    // Nothing fits any more, not even a one-micro request.
    const error = await grpcError(billing.client.reserve({ tenantId, model: MODEL, inputTokens: 0, maxOutputTokens: 1 }));
    expect(error.code).toBe(GrpcStatus.FAILED_PRECONDITION);
  });
});

describe('Release', () => {
  it('frees a held reservation, and is idempotent', async () => {
    const tenantId = newTenant();
    const reservation = await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 0, maxOutputTokens: 1_000_000 });
    expect(reservation.availableMicros).toBe(GRANT_MICROS - 400_000n);

    expect(await billing.client.release({ reservationId: reservation.reservationId, reason: 'client disconnected' })).toMatchObject({ released: true });
    expect((await reservationRow(billing.pool, reservation.reservationId))?.status).toBe('released');
    expect(await heldOf(billing.pool, tenantId)).toBe(0n);
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS);

    // Released again: still released, nothing else changes.
    expect(await billing.client.release({ reservationId: reservation.reservationId, reason: 'retry' })).toMatchObject({ released: true });
    const next = await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 0, maxOutputTokens: 1 });
    expect(next.availableMicros).toBe(GRANT_MICROS - 1n);
  });

  it('answers NOT_FOUND for an unknown reservation or another tenant, INVALID_ARGUMENT for a malformed id', async () => {
    expect((await grpcError(billing.client.release({ reservationId: randomUUID(), reason: '' }))).code).toBe(GrpcStatus.NOT_FOUND);
    expect((await grpcError(billing.client.release({ reservationId: 'nope', reason: '' }))).code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect((await grpcError(billing.client.release({ reservationId: '', reason: '' }))).code).toBe(GrpcStatus.INVALID_ARGUMENT);

    const reservation = await billing.client.reserve({ tenantId: newTenant(), model: MODEL, inputTokens: 1, maxOutputTokens: 1 });
    const error = await grpcError(billing.client.release({ reservationId: reservation.reservationId, reason: '' }, { context: { tenantId: newTenant() } }));
    expect(error.code).toBe(GrpcStatus.NOT_FOUND);
    expect((await reservationRow(billing.pool, reservation.reservationId))?.status).toBe('held');
  });
});

describe('ledger and tenant isolation in the database', () => {
  it('rejects unbalanced transactions and edits of booked entries', async () => {
    const tenantId = newTenant();
    await billing.client.reserve({ tenantId, model: MODEL, inputTokens: 1, maxOutputTokens: 1 });
    const client = await billing.pool.connect();
    const inTransaction = async (work: (accountId: string, transactionId: string) => Promise<unknown>) => {
      await client.query('BEGIN');
      try {
        const { rows } = await client.query(`SELECT id FROM billing.accounts WHERE tenant_id = $1`, [tenantId]);
        const txn = await client.query(`INSERT INTO billing.ledger_transactions (tenant_id, kind, reference) VALUES ($1, 'manual_adjustment', $2) RETURNING id`, [tenantId, randomUUID()]);
        return await work(rows[0].id, txn.rows[0].id);
      } finally {
        await client.query('ROLLBACK').catch(() => undefined);
      }
    };
    const insertEntries = (transactionId: string, accountId: string, amounts: number[]) =>
      client.query(
        `INSERT INTO billing.ledger_entries (transaction_id, tenant_id, account_id, amount_micros) SELECT $1, $2, $3, a FROM unnest($4::bigint[]) AS a`,
        [transactionId, tenantId, accountId, amounts],
      );
    try {
      // One entry, and two that do not sum to zero: refused by the statement itself.
      await inTransaction((account, txn) => expect(insertEntries(txn, account, [5])).rejects.toThrow(/unbalanced/));
      await inTransaction((account, txn) => expect(insertEntries(txn, account, [5, -4])).rejects.toThrow(/unbalanced/));
      // A transaction without entries: refused at commit.
      await inTransaction(async () => expect(client.query('COMMIT')).rejects.toThrow(/unbalanced/));
      // Balanced entries pass the statement check; booked rows cannot be edited or deleted.
      await inTransaction(async (account, txn) => {
        await insertEntries(txn, account, [5, -5]);
        await expect(client.query(`UPDATE billing.ledger_entries SET amount_micros = 1 WHERE tenant_id = $1`, [tenantId])).rejects.toThrow(/append-only/);
      });
      await inTransaction(() => expect(client.query(`DELETE FROM billing.ledger_transactions WHERE tenant_id = $1`, [tenantId])).rejects.toThrow(/append-only/));
      // Entries must refer to a transaction of their own tenant and to an existing account, and accounts stay.
      await inTransaction((account) => expect(insertEntries(randomUUID(), account, [5, -5])).rejects.toThrow(/transaction .* does not exist/));
      await inTransaction((_account, txn) => expect(insertEntries(txn, randomUUID(), [5, -5])).rejects.toThrow(/account .* does not exist/));
      await inTransaction(async (account) => {
        const other = await client.query(`INSERT INTO billing.ledger_transactions (tenant_id, kind, reference) VALUES ($1, 'manual_adjustment', $2) RETURNING id`, [newTenant(), randomUUID()]);
        await expect(insertEntries(other.rows[0].id, account, [5, -5])).rejects.toThrow(/does not exist/);
      });
      await inTransaction(() => expect(client.query(`DELETE FROM billing.accounts WHERE tenant_id = $1`, [tenantId])).rejects.toThrow(/permanent/));
      await inTransaction(() => expect(client.query(`UPDATE billing.accounts SET id = gen_random_uuid() WHERE tenant_id = $1`, [tenantId])).rejects.toThrow(/permanent/));
    } finally {
      client.release();
    }
    expect(await balanceOf(billing.pool, tenantId)).toBe(GRANT_MICROS);
  });

  it('row-level security shows a non-owner role only the rows of app.tenant_id', async () => {
    const tenantA = newTenant();
    const tenantB = newTenant();
    await billing.client.reserve({ tenantId: tenantA, model: MODEL, inputTokens: 1, maxOutputTokens: 1 });
    const b = await billing.client.reserve({ tenantId: tenantB, model: MODEL, inputTokens: 1, maxOutputTokens: 1 });
    const role = `billing_rls_test_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
    const client = await billing.pool.connect();
    try {
      await client.query(`CREATE ROLE ${role} NOLOGIN`);
      await client.query(`GRANT USAGE ON SCHEMA billing TO ${role}`);
      await client.query(`GRANT SELECT ON billing.accounts, billing.reservations, billing.ledger_transactions, billing.ledger_entries, billing.usage_records TO ${role}`);
      await client.query('BEGIN');
      await client.query(`SET LOCAL ROLE ${role}`);
      await client.query(`SELECT set_config('app.tenant_id', $1, true)`, [tenantA]);
      const seen = await client.query(`SELECT DISTINCT tenant_id FROM billing.reservations WHERE tenant_id = ANY($1)`, [[tenantA, tenantB]]);
      expect(seen.rows.map((row) => row.tenant_id)).toEqual([tenantA]);
      const entries = await client.query(`SELECT DISTINCT tenant_id FROM billing.ledger_entries WHERE tenant_id = ANY($1)`, [[tenantA, tenantB]]);
      expect(entries.rows.map((row) => row.tenant_id)).toEqual([tenantA]);
      const accounts = await client.query(`SELECT tenant_id, system_code FROM billing.accounts WHERE tenant_id = ANY($1) OR system_code IS NOT NULL`, [[tenantA, tenantB]]);
      expect(accounts.rows.filter((row) => row.tenant_id).map((row) => row.tenant_id)).toEqual([tenantA]);
      expect(accounts.rows.filter((row) => row.system_code).length).toBeGreaterThanOrEqual(2);
      // The narrow cross-tenant lookup still works for that role.
      const owner = await client.query(`SELECT billing.reservation_tenant($1) AS tenant_id`, [b.reservationId]);
      expect(owner.rows[0].tenant_id).toBe(tenantB);
      await client.query(`SELECT set_config('app.tenant_id', '', true)`);
      const none = await client.query(`SELECT count(*)::int AS n FROM billing.reservations WHERE tenant_id = ANY($1)`, [[tenantA, tenantB]]);
      expect(none.rows[0].n).toBe(0);
      await client.query('ROLLBACK');
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      await client.query(`DROP OWNED BY ${role}`).catch(() => undefined);
      await client.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
      client.release();
    }
  });

  it('the one-round-trip Reserve (billing.reserve_hold) works for a non-owner role under row-level security and scopes itself to its tenant', async () => {
    const tenant = newTenant();
    await billing.client.reserve({ tenantId: tenant, model: MODEL, inputTokens: 1, maxOutputTokens: 1 }); // creates the account
    const role = `billing_rls_test_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
    const client = await billing.pool.connect();
    const call = (base: number) =>
      client.query(`SELECT outcome, amount_micros::text AS amount, balance_micros::text AS balance FROM billing.reserve_hold($1, 'u', 'k', 'r', $2, 1, 1, 0, 0, 0, $3, 60, NULL)`, [tenant, MODEL, base]);
    try {
      await client.query(`CREATE ROLE ${role} NOLOGIN`);
      await client.query(`GRANT USAGE ON SCHEMA billing TO ${role}`);
      await client.query(`GRANT SELECT, UPDATE ON billing.accounts TO ${role}`);
      await client.query(`GRANT SELECT, INSERT ON billing.reservations TO ${role}`);
      await client.query(`GRANT SELECT ON billing.ledger_entries TO ${role}`);
      await client.query('BEGIN');
      await client.query(`SET LOCAL ROLE ${role}`);
      await client.query(`SELECT set_config('app.tenant_id', 'some-other-tenant', true)`);
      expect((await call(7)).rows[0]).toMatchObject({ outcome: 'held', amount: '7', balance: GRANT_MICROS.toString() });
      expect((await call(Number(GRANT_MICROS))).rows[0]).toMatchObject({ outcome: 'insufficient', amount: GRANT_MICROS.toString() });
      const mine = await client.query(`SELECT count(*)::int AS n FROM billing.reservations WHERE tenant_id = $1 AND amount_micros = 7`, [tenant]);
      expect(mine.rows[0].n).toBe(1); // the function set app.tenant_id to its tenant for the rest of the transaction
      await client.query('ROLLBACK');
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      await client.query(`DROP OWNED BY ${role}`).catch(() => undefined);
      await client.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
      client.release();
    }
  });
});
