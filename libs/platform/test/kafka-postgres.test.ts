import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createKafka, createPool, ensureTopics, EventPublisher, IdempotentConsumer, migrate, Outbox, PoisonMessageError,
  withTenantTransaction, type Pool,
} from '../src';
import { infraEnv } from './support/infra';

const logger = pino({ level: 'silent' });
const schema = `platform_test_${randomUUID().slice(0, 8)}`;
const topic = `platform.test.${randomUUID().slice(0, 8)}.v1`;
const dlq = `${topic}.dlq`;
let pool: Pool;
const kafka = () => createKafka(infraEnv('KAFKA_BROKERS').split(','), 'platform-test', logger);

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  pool = createPool(infraEnv('DATABASE_URL'), { applicationName: 'platform-test' });
  await ensureTopics(kafka(), [{ topic, numPartitions: 3 }, { topic: dlq, numPartitions: 1 }]);
});

afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await pool.end();
});

describe('migrate', () => {
  it('applies each file once, in order, and is safe to run concurrently', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'migrations-'));
    writeFileSync(path.join(dir, '001_items.sql'), 'CREATE TABLE items (id int PRIMARY KEY, tenant_id text NOT NULL); ALTER TABLE items ENABLE ROW LEVEL SECURITY; ALTER TABLE items FORCE ROW LEVEL SECURITY;');
    writeFileSync(path.join(dir, '002_policy.sql'), `CREATE POLICY tenant_isolation ON items USING (tenant_id = current_setting('app.tenant_id', true));`);
    const runs = await Promise.all([migrate(pool, schema, dir, logger), migrate(pool, schema, dir, logger)]);
    expect(runs.flat().sort()).toEqual(['001_items.sql', '002_policy.sql']);
    expect(await migrate(pool, schema, dir, logger)).toEqual([]);
  });

  it('reports which migration failed and leaves nothing half-applied', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'migrations-'));
    writeFileSync(path.join(dir, '001_items.sql'), 'SELECT 1');
    writeFileSync(path.join(dir, '002_policy.sql'), 'SELECT 1');
    writeFileSync(path.join(dir, '003_broken.sql'), 'CREATE TABLE half (id int); SELECT * FROM no_such_table;');
    await expect(migrate(pool, schema, dir, logger)).rejects.toThrow(/003_broken.sql/);
    const { rows } = await pool.query(`SELECT to_regclass('${schema}.half') AS table`);
    expect(rows[0].table).toBeNull();
  });
});

describe('ensureTopics', () => {
  it('returns only when every partition has a leader, also when several callers create the same topic at once', async () => {
    const fresh = `platform.test.${randomUUID().slice(0, 8)}.ensure.v1`;
    await Promise.all([ensureTopics(kafka(), [{ topic: fresh, numPartitions: 4 }]), ensureTopics(kafka(), [{ topic: fresh, numPartitions: 4 }])]);
    const admin = kafka().admin();
    await admin.connect();
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [fresh] });
      expect(topics[0]!.partitions).toHaveLength(4);
      expect(topics[0]!.partitions.every((partition) => partition.leader >= 0)).toBe(true);
      await ensureTopics(kafka(), [{ topic: fresh, numPartitions: 4 }]); // existing: left as it is
      expect((await admin.fetchTopicMetadata({ topics: [fresh] })).topics[0]!.partitions).toHaveLength(4);
      await admin.deleteTopics({ topics: [fresh] });
    } finally {
      await admin.disconnect();
    }
  });
});

describe('withTenantTransaction', () => {
  it('scopes row-level security to the tenant for a role that does not bypass it', async () => {
    const role = `rls_${randomUUID().slice(0, 8)}`;
    await pool.query(`CREATE ROLE ${role} NOLOGIN; GRANT USAGE ON SCHEMA ${schema} TO ${role}; GRANT SELECT, INSERT ON ${schema}.items TO ${role}`);
    await pool.query(`INSERT INTO ${schema}.items VALUES (1, 'tenant-a'), (2, 'tenant-b')`);
    const visible = await withTenantTransaction(pool, 'tenant-a', async (client) => {
      await client.query(`SET LOCAL ROLE ${role}`);
      return (await client.query(`SELECT id FROM ${schema}.items ORDER BY id`)).rows.map((row) => row.id);
    });
    expect(visible).toEqual([1]);
  });
});

describe('outbox and idempotent consumer', () => {
  const publisher = new EventPublisher(kafka());
  let consumer: IdempotentConsumer;
  const handled: string[] = [];

  beforeAll(async () => {
    await pool.query(`CREATE TABLE ${schema}.effects (event_id text PRIMARY KEY, body text NOT NULL)`);
    consumer = new IdempotentConsumer({
      kafka: kafka(), pool, schema, groupId: `test-${randomUUID()}`, topic, deadLetterTopic: dlq, publisher, logger,
      handle: async (client, event) => {
        const body = event.value.toString();
        if (body === 'poison') throw new PoisonMessageError('body is poison');
        handled.push(event.id);
        await client.query(`INSERT INTO ${schema}.effects (event_id, body) VALUES ($1, $2)`, [event.id, body]);
      },
    });
    await consumer.start();
  });

  afterAll(async () => {
    await consumer.stop();
    await publisher.disconnect();
  });

  it('relays events written to the outbox, and a redelivered event takes effect once', async () => {
    const outbox = new Outbox(pool, schema, publisher, logger, 50);
    await outbox.ensureTable();
    const id = await outbox.enqueue(topic, { type: 'test.v1', source: 'test', key: 'tenant-a', data: 'hello' });
    // The same event published again, as a relay retry after a crash would.
    await outbox.flush();
    await publisher.publish(topic, [{ id, type: 'test.v1', source: 'test', key: 'tenant-a', data: 'hello' }]);
    await waitFor(async () => ((await pool.query(`SELECT 1 FROM ${schema}.effects WHERE event_id = $1`, [id])).rowCount ? true : undefined), 'the effect');
    const marker = randomUUID();
    await publisher.publish(topic, [{ id: marker, type: 'test.v1', source: 'test', key: 'tenant-a', data: 'marker' }]);
    await waitFor(async () => (handled.includes(marker) ? true : undefined), 'the marker event');
    expect(handled.filter((seen) => seen === id)).toHaveLength(1);
    expect((await pool.query(`SELECT count(*)::int AS n FROM ${schema}.outbox`)).rows[0].n).toBe(0);
  });

  it('relays a burst of enqueues in few passes, and steady enqueues do not hold the relay back', async () => {
    const batches: number[] = [];
    const counting = { publish: (to: string, events: unknown[]) => (batches.push(events.length), publisher.publish(to, events as never)) } as unknown as EventPublisher;
    // A table of its own (the first test's outbox keeps relaying its schema's), and no periodic
    // pass (1 min): only the wakes of enqueue relay anything here.
    const own = `${schema}_burst`;
    await pool.query(`CREATE SCHEMA IF NOT EXISTS ${own}`);
    const outbox = new Outbox(pool, own, counting, logger, 60_000, 20);
    await outbox.ensureTable();
    const pendingRows = async () => (await pool.query(`SELECT count(*)::int AS n FROM ${own}.outbox`)).rows[0].n as number;
    await Promise.all(Array.from({ length: 30 }, (_, i) => outbox.enqueue(topic, { type: 'test.v1', source: 'test', key: 'tenant-b', data: `burst-${i}` })));
    await waitFor(async () => ((await pendingRows()) === 0 ? true : undefined), 'the burst to be relayed');
    expect(batches.reduce((sum, n) => sum + n, 0)).toBe(30);
    expect(batches.length).toBeLessThanOrEqual(3);

    // One enqueue every 5 ms: each wake comes before the previous one's pass is due.
    const first = await outbox.enqueue(topic, { type: 'test.v1', source: 'test', key: 'tenant-b', data: 'steady-0' });
    let firstRelayedWhileEnqueuing = false;
    for (let i = 1; i < 60; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      await outbox.enqueue(topic, { type: 'test.v1', source: 'test', key: 'tenant-b', data: `steady-${i}` });
      const { rowCount } = await pool.query(`SELECT 1 FROM ${own}.outbox WHERE event->>'id' = $1`, [first]);
      if (rowCount === 0) firstRelayedWhileEnqueuing = true;
    }
    expect(firstRelayedWhileEnqueuing).toBe(true);
    await outbox.stop();
    expect(await pendingRows()).toBe(0); // stop sends what is left
  });

  it('parks a poison event in the dead-letter topic with its reason and keeps consuming', async () => {
    const poisonId = randomUUID();
    const afterId = randomUUID();
    const seen: Array<{ id?: string; reason?: string }> = [];
    const reader = kafka().consumer({ groupId: `dlq-reader-${randomUUID()}` });
    await reader.connect();
    await reader.subscribe({ topic: dlq, fromBeginning: true });
    await reader.run({ eachMessage: async ({ message }) => {
      seen.push({ id: message.headers?.ce_id?.toString(), reason: message.headers?.ce_deadletterreason?.toString() });
    } });
    await publisher.publish(topic, [
      { id: poisonId, type: 'test.v1', source: 'test', key: 'tenant-a', data: 'poison' },
      { id: afterId, type: 'test.v1', source: 'test', key: 'tenant-a', data: 'after' },
    ]);
    await waitFor(async () => (handled.includes(afterId) ? true : undefined), 'the event after the poison one');
    const parked = await waitFor(async () => seen.find((entry) => entry.id === poisonId), 'the dead-lettered event');
    await reader.disconnect();
    expect(parked.reason).toBe('body is poison');
    expect(handled).not.toContain(poisonId);
    expect((await pool.query(`SELECT 1 FROM ${schema}.effects WHERE event_id = $1`, [poisonId])).rowCount).toBe(0);
  });
});
