import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { MODEL, waitFor } from './support/stack';
import { useStack } from './support/suite';
import { postAnsweredEarly } from './support/early-answer';

const suite = useStack();

const requestIdOf = (completionId: string) => completionId.replace(/^chatcmpl-/, '');

async function usageRecord(requestId: string) {
  return waitFor(async () => {
    const { rows } = await suite.db.query(
      `SELECT u.input_tokens, u.output_tokens, u.status, u.cost_micros, r.status AS reservation_status
         FROM billing.usage_records u LEFT JOIN billing.reservations r ON r.id = u.reservation_id
        WHERE u.request_id = $1`,
      [requestId],
    );
    return rows[0];
  }, `billing's usage record of ${requestId}`);
}

async function streamTurn(content: string, conversationId?: string) {
  const { data: stream, response } = await suite.client.chat.completions
    .create(
      { model: MODEL, messages: [{ role: 'user', content }], stream: true, stream_options: { include_usage: true }, max_tokens: 40, temperature: 0 },
      { headers: conversationId ? { 'x-conversation-id': conversationId } : {} },
    )
    .withResponse();
  let text = '';
  let usage: OpenAI.CompletionUsage | undefined | null;
  let id = '';
  let finishReason: string | null = null;
  for await (const chunk of stream) {
    id = chunk.id;
    text += chunk.choices[0]?.delta?.content ?? '';
    finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
    if (chunk.usage) usage = chunk.usage;
  }
  return { text, usage: usage!, requestId: requestIdOf(id), finishReason, conversationId: response.headers.get('x-conversation-id')! };
}

describe('a chat turn through every service', () => {
  let first: Awaited<ReturnType<typeof streamTurn>>;

  it('streams real model text, with usage on the final chunk equal to what billing stored', async () => {
    first = await streamTurn('Name three colours of the rainbow.');
    expect(first.text.trim().length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(first.finishReason);
    expect(first.usage.prompt_tokens).toBeGreaterThan(5);
    expect(first.usage.completion_tokens).toBeGreaterThan(0);
    expect(first.usage.total_tokens).toBe(first.usage.prompt_tokens + first.usage.completion_tokens);

    const record = await usageRecord(first.requestId);
    expect(Number(record.input_tokens)).toBe(first.usage.prompt_tokens);
    expect(Number(record.output_tokens)).toBe(first.usage.completion_tokens);
    expect(Number(record.cost_micros)).toBeGreaterThan(0);
    expect(record.reservation_status).toBe('settled');
  });

  it('sends the stored first turn as context of the second turn', async () => {
    expect(first.conversationId).toMatch(/^[0-9a-f-]{36}$/);
    const second = await streamTurn('Now name one more.', first.conversationId);
    expect(second.conversationId).toBe(first.conversationId);
    // The second prompt holds the first question and answer, so it is longer than both together.
    expect(second.usage.prompt_tokens).toBeGreaterThan(first.usage.prompt_tokens + first.usage.completion_tokens);
    const { rows } = await suite.db.query(
      `SELECT role, content FROM orchestrator.messages WHERE conversation_id = $1 ORDER BY seq`,
      [first.conversationId],
    );
    expect(rows.map((row) => row.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(rows[1].content).toBe(first.text);
  });

  it('answers a non-streamed completion with usage', async () => {
    const completion = await suite.client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Say yes.' }], max_tokens: 8 });
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(completion.usage!.completion_tokens).toBeGreaterThan(0);
    expect(completion.usage!.completion_tokens).toBeLessThanOrEqual(8);
    const record = await usageRecord(requestIdOf(completion.id));
    expect(Number(record.output_tokens)).toBe(completion.usage!.completion_tokens);
  });

  it('lists the served model', async () => {
    const models = await suite.client.models.list();
    expect(models.data.map((model) => model.id)).toContain(MODEL);
  });
});

describe('bad input', () => {
  async function rawPost(body: string, headers: Record<string, string> = {}) {
    return fetch(`${suite.stack.gatewayUrl}/v1/chat/completions`, {
      method: 'POST',
      body,
      headers: { authorization: `Bearer ${suite.tenant.apiKey}`, 'content-type': 'application/json', ...headers },
    });
  }

  async function usageCount() {
    const { rows } = await suite.db.query(`SELECT count(*)::int AS n FROM billing.usage_records WHERE tenant_id = $1`, [suite.tenant.tenantId]);
    const holds = await suite.db.query(`SELECT count(*)::int AS n FROM billing.reservations WHERE tenant_id = $1`, [suite.tenant.tenantId]);
    return { usage: rows[0].n as number, holds: holds.rows[0].n as number };
  }

  it('answers each with the right 4xx in the OpenAI error shape and writes no usage', async () => {
    const before = await usageCount();
    const cases: Array<[string, () => Promise<Response>, number]> = [
      ['malformed JSON', () => rawPost('{"model": "x", "messages": [}'), 400],
      ['missing key', () => rawPost(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }), { authorization: '' }), 401],
      ['unknown key', () => rawPost(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }), { authorization: 'Bearer pk_AAAAAAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB' }), 401],
      ['unknown model', () => rawPost(JSON.stringify({ model: 'gpt-nonexistent', messages: [{ role: 'user', content: 'hi' }] })), 404],
      ['empty messages', () => rawPost(JSON.stringify({ model: MODEL, messages: [] })), 400],
      ['body over the size limit', () => postAnsweredEarly(`${suite.stack.gatewayUrl}/v1/chat/completions`, { authorization: `Bearer ${suite.tenant.apiKey}`, 'content-type': 'application/json' },
        JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x'.repeat(2 * 1024 * 1024) }] })), 413],
      ['wrong types', () => rawPost(JSON.stringify({ model: MODEL, messages: 'hello', max_tokens: 'ten' })), 400],
      ['unknown field', () => rawPost(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], frobnicate: true })), 400],
      ['huge max_tokens', () => rawPost(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 10_000_000 })), 400],
      ['unknown conversation', () => rawPost(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }), { 'x-conversation-id': '00000000-0000-4000-8000-000000000000' }), 404],
    ];
    for (const [name, send, status] of cases) {
      const response = await send();
      expect(response.status, name).toBe(status);
      const body = await response.json();
      expect(body, name).toEqual({ error: { message: expect.any(String), type: expect.any(String), code: expect.toBeOneOf([expect.any(String), null]), param: expect.toBeOneOf([expect.any(String), null]) } });
      expect(body.error.message.length, name).toBeGreaterThan(3);
    }
    // Nothing reached a model, so billing saw no usage; the one turn that got a hold
    // (unknown conversation) released it.
    const after = await usageCount();
    expect(after.usage).toBe(before.usage);
    const open = await suite.db.query(`SELECT count(*)::int AS n FROM billing.reservations WHERE tenant_id = $1 AND status = 'held'`, [suite.tenant.tenantId]);
    expect(open.rows[0].n).toBe(0);
  });

  it('surfaces the same errors through the openai client', async () => {
    await expect(suite.client.chat.completions.create({ model: 'gpt-nonexistent', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
    await expect(suite.client.chat.completions.create({ model: MODEL, messages: [] })).rejects.toMatchObject({ status: 400, type: 'invalid_request_error' });
    const stranger = new OpenAI({ apiKey: 'pk_AAAAAAAAAAAAAAAA_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC', baseURL: `${suite.stack.gatewayUrl}/v1`, maxRetries: 0 });
    await expect(stranger.models.list()).rejects.toMatchObject({ status: 401 });
  });
});
