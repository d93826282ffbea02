import path from 'node:path';
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database, HealthRegistry } from '@ai-platform/platform';
import { ConversationStore } from '../src/conversations/conversation.store';

let database: Database;
let store: ConversationStore;

beforeAll(async () => {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set: run with npm test');
  database = new Database(url, 'orchestrator', path.resolve(__dirname, '../migrations'), pino({ level: 'silent' }), new HealthRegistry());
  await database.onModuleInit();
  store = new ConversationStore(database);
});

afterAll(async () => {
  await database.onApplicationShutdown();
});

describe('ConversationStore', () => {
  it('stores turns in order and returns the newest history oldest-first', async () => {
    const tenant = `t-${randomUUID()}`;
    const conversation = await store.create(tenant, 'u1', 'm');
    await store.appendTurn(conversation, { messages: [{ role: 'user', content: 'q1' }], answer: 'a1', complete: true });
    await store.appendTurn(conversation, { messages: [{ role: 'user', content: 'q2' }], answer: 'a2', complete: false });
    expect(await store.history(conversation, 10)).toEqual([
      { role: 'user', content: 'q1' }, { role: 'assistant', content: 'a1' }, { role: 'user', content: 'q2' }, { role: 'assistant', content: 'a2' },
    ]);
    expect(await store.history(conversation, 2)).toEqual([{ role: 'user', content: 'q2' }, { role: 'assistant', content: 'a2' }]);
    expect(await store.history(conversation, 0)).toEqual([]);
  });

  it('stores a turn of several messages in one go, in their order, with the answer last', async () => {
    const conversation = await store.create(`t-${randomUUID()}`, 'u1', 'm');
    const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'q1' }, { role: 'assistant', content: 'prior' }, { role: 'user', content: 'q2' }];
    await store.appendTurn(conversation, { requestId: 'req-1', messages, answer: 'a', complete: true, inputTokens: 7, outputTokens: 1 });
    expect(await store.history(conversation, 10)).toEqual([...messages, { role: 'assistant', content: 'a' }]);
  });

  it('writes a draft conversation only with its first turn, owned by its tenant and user, and appends later turns to it', async () => {
    const draft = store.draft(`t-${randomUUID()}`, 'u1', 'm');
    expect(await store.find(draft.tenantId, 'u1', draft.id)).toBeUndefined(); // nothing written before the turn
    await store.appendTurn(draft, { messages: [{ role: 'user', content: 'q1' }], answer: 'a1', complete: true });
    expect(await store.find(draft.tenantId, 'u1', draft.id)).toEqual({ id: draft.id, tenantId: draft.tenantId, userId: 'u1', model: 'm' });
    expect(await store.find(draft.tenantId, 'u2', draft.id)).toBeUndefined();
    await store.appendTurn(draft, { messages: [{ role: 'user', content: 'q2' }], answer: 'a2', complete: true });
    expect(await store.history(draft, 10)).toEqual([
      { role: 'user', content: 'q1' }, { role: 'assistant', content: 'a1' }, { role: 'user', content: 'q2' }, { role: 'assistant', content: 'a2' },
    ]);
  });

  it('never finds another tenant\'s or another user\'s conversation', async () => {
    const conversation = await store.create(`t-${randomUUID()}`, 'owner', 'm');
    expect(await store.find(conversation.tenantId, 'owner', conversation.id)).toMatchObject({ id: conversation.id });
    expect(await store.find(`t-${randomUUID()}`, 'owner', conversation.id)).toBeUndefined();
    expect(await store.find(conversation.tenantId, 'someone-else', conversation.id)).toBeUndefined();
  });
});
