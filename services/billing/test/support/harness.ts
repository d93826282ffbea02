import { randomUUID } from 'node:crypto';
import { create, toJsonString, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { billing, EventTypes, events } from '@ai-platform/contracts';
import { createGrpcClient, createKafka, createLogger, createPool, ensureTopics, EventPublisher, type Pool, type RunningService, type ServiceClient } from '@ai-platform/platform';
import type { Kafka } from 'kafkajs';
import type { BillingConfig } from '../../src/config';
import { startBilling } from '../../src/service';

/** The test app's own price table, so expectations do not follow list-price changes. */
export const MODEL = 'billing-test-model';
export const TEST_PRICES = [{ model: MODEL, inputMicrosPerMillion: 100_000, cachedInputMicrosPerMillion: 25_000, outputMicrosPerMillion: 400_000 }];
/**
 * Topics of this test file's own: no other billing process (a dev stack, an
 * e2e stack, another test file) consumes them, so nothing else can create the
 * test tenants' accounts with another sign-up grant or bill their events.
 */
const RUN_ID = randomUUID().slice(0, 8);
export const USAGE_TOPIC = `test.usage.events.v1.${RUN_ID}`;
export const USAGE_DLQ_TOPIC = `test.usage.events.dlq.v1.${RUN_ID}`;
/** Test apps grant 1 credit to a new tenant. */
export const GRANT_MICROS = 1_000_000n;

export interface TestBilling {
  running: RunningService<BillingConfig>;
  client: ServiceClient<typeof billing.BillingService>;
  /** A pool of the test's own, for assertions. */
  pool: Pool;
  kafka: Kafka;
  publisher: EventPublisher;
  close(): Promise<void>;
}

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run \`set -a; source .local/infra.env; set +a\` after \`bash infra/local/infra.sh start\``);
  return value;
}

/** Starts the billing service in-process on free ports with a consumer group of its own. */
export async function startTestBilling(env: Record<string, string> = {}): Promise<TestBilling> {
  const databaseUrl = requireEnv('DATABASE_URL');
  const brokers = requireEnv('KAFKA_BROKERS');
  // The file's own topics and a fresh consumer group positioned at their end:
  // the test app bills only what this test file publishes.
  const groupId = `billing-test-${randomUUID()}`;
  const kafka = createKafka(brokers.split(','), `billing-test-${randomUUID()}`, createLogger('billing-test', 'error'));
  await startGroupAtEnd(kafka, groupId, USAGE_TOPIC);
  Object.assign(process.env, {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
    HTTP_PORT: '0',
    GRPC_PORT: '0',
    SIGNUP_GRANT_CREDITS: '1',
    MODEL_PRICES_JSON: JSON.stringify(TEST_PRICES),
    KAFKA_CONSUMER_GROUP: groupId,
    USAGE_TOPIC,
    USAGE_DLQ_TOPIC,
    ...env,
  });
  const running = await startBilling();
  const client = createGrpcClient(billing.BillingService, `127.0.0.1:${running.grpcPort}`, { defaultTimeoutMs: 5_000 });
  const pool = createPool(databaseUrl, { applicationName: 'billing-test', max: 4 });
  const publisher = new EventPublisher(kafka);
  await publisher.connect();
  let closed: Promise<void> | undefined;
  return {
    running,
    client,
    pool,
    kafka,
    publisher,
    close: () =>
      (closed ??= (async () => {
        client.close();
        await publisher.disconnect();
        await running.shutdown('test finished');
        await pool.end();
      })()),
  };
}

/**
 * Creates the file's own topics and commits their end offsets for the group
 * (0 on a fresh topic); retried until the new partitions have a leader.
 */
async function startGroupAtEnd(kafka: Kafka, groupId: string, topic: string): Promise<void> {
  await ensureTopics(kafka, [{ topic: USAGE_TOPIC }, { topic: USAGE_DLQ_TOPIC }]);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await waitFor(`a leader for ${topic}`, () => admin.fetchTopicOffsets(topic).catch(() => undefined), 20_000);
    await admin.setOffsets({ groupId, topic, partitions: offsets.map(({ partition, high }) => ({ partition, offset: high })) });
  } finally {
    await admin.disconnect();
  }
}

/** Polls `probe` until it returns a value other than undefined/false; fails after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 45_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export const newTenant = () => `tenant-${randomUUID()}`;

/** Sum of the tenant account's ledger entries. */
export async function balanceOf(pool: Pool, tenantId: string): Promise<bigint> {
  const { rows } = await pool.query(
    `SELECT coalesce(sum(e.amount_micros), 0) AS balance FROM billing.ledger_entries e JOIN billing.accounts a ON a.id = e.account_id WHERE a.tenant_id = $1`,
    [tenantId],
  );
  return BigInt(rows[0].balance);
}

/**
 * The sum of the tenant's open holds, counted from its reservations; throws when the
 * account row's held_micros (kept by the database, migration 010) says otherwise.
 */
export async function heldOf(pool: Pool, tenantId: string): Promise<bigint> {
  const { rows } = await pool.query(
    `SELECT (SELECT coalesce(sum(amount_micros), 0) FROM billing.reservations WHERE tenant_id = $1 AND status = 'held') AS held,
            (SELECT held_micros FROM billing.accounts WHERE tenant_id = $1 AND kind = 'tenant') AS on_row`,
    [tenantId],
  );
  const held = BigInt(rows[0].held);
  const onRow = BigInt(rows[0].on_row ?? 0);
  if (onRow !== held) throw new Error(`accounts.held_micros of ${tenantId} is ${onRow}, its open holds sum to ${held}`);
  await expectSubjectHoldsInStep(pool, tenantId);
  return held;
}

/**
 * For a tenant with budgets, budget_subject_holds must equal its open holds summed per user
 * and per key (migration 011); for any other tenant it must be empty.
 */
export async function expectSubjectHoldsInStep(pool: Pool, tenantId: string): Promise<void> {
  const { rows } = await pool.query(
    `WITH expected AS (
       SELECT s.scope, s.subject, sum(r.amount_micros) AS held
         FROM billing.reservations r
        CROSS JOIN LATERAL (VALUES ('user', r.user_id), ('api_key', r.api_key_id)) AS s(scope, subject)
        WHERE r.tenant_id = $1 AND r.status = 'held' AND (SELECT has_budgets FROM billing.accounts WHERE tenant_id = $1 AND kind = 'tenant')
        GROUP BY s.scope, s.subject HAVING sum(r.amount_micros) <> 0),
     kept AS (SELECT scope, subject, held_micros AS held FROM billing.budget_subject_holds WHERE tenant_id = $1 AND held_micros <> 0)
     SELECT coalesce(e.scope, k.scope) AS scope, coalesce(e.subject, k.subject) AS subject, e.held::text AS expected, k.held::text AS kept
       FROM expected e FULL JOIN kept k ON k.scope = e.scope AND k.subject = e.subject
      WHERE e.held IS DISTINCT FROM k.held`,
    [tenantId],
  );
  if (rows.length) throw new Error(`budget_subject_holds of ${tenantId} is out of step with its open holds: ${JSON.stringify(rows)}`);
}

export async function ledgerTransactions(pool: Pool, tenantId: string): Promise<Array<{ id: string; kind: string; reference: string; entries: bigint[] }>> {
  const { rows } = await pool.query(
    `SELECT t.id, t.kind, t.reference, array_agg(e.amount_micros::text ORDER BY e.amount_micros) AS entries
       FROM billing.ledger_transactions t JOIN billing.ledger_entries e ON e.transaction_id = t.id
      WHERE t.tenant_id = $1 GROUP BY t.id ORDER BY t.created_at, t.kind`,
    [tenantId],
  );
  return rows.map((row) => ({ id: row.id, kind: row.kind, reference: row.reference, entries: (row.entries as string[]).map(BigInt) }));
}

export async function reservationRow(pool: Pool, id: string) {
  const { rows } = await pool.query(`SELECT status, amount_micros, settled_micros, expires_at FROM billing.reservations WHERE id = $1`, [id]);
  return rows[0] as { status: string; amount_micros: string; settled_micros: string; expires_at: Date } | undefined;
}

export function usageEvent(init: MessageInitShape<typeof events.UsageEventSchema>): events.UsageEvent {
  const now = new Date();
  return create(events.UsageEventSchema, {
    eventId: randomUUID(),
    model: MODEL,
    status: events.UsageStatus.COMPLETED,
    startedAt: timestampFromDate(new Date(now.getTime() - 1_000)),
    finishedAt: timestampFromDate(now),
    ...init,
  });
}

/** Publishes as the scheduler does: protobuf JSON, key = tenant, ce_id = event id. */
export async function publishUsage(publisher: EventPublisher, event: events.UsageEvent): Promise<void> {
  await publisher.publish(USAGE_TOPIC, [
    { id: event.eventId, type: EventTypes.usageRecorded, source: 'billing-test', key: event.tenantId, data: toJsonString(events.UsageEventSchema, event) },
  ]);
}

/** Publishes an arbitrary payload with CloudEvents headers (for poison events). */
export async function publishRaw(publisher: EventPublisher, options: { id: string; key: string; data: string }): Promise<void> {
  await publisher.publish(USAGE_TOPIC, [{ id: options.id, type: EventTypes.usageRecorded, source: 'billing-test', key: options.key, data: options.data }]);
}
