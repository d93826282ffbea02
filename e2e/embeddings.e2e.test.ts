import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { waitFor } from './support/stack';
import { useStack } from './support/suite';

const EMBEDDING_MODEL = 'all-minilm-l6-v2';
const PRICE_PER_MILLION = 20_000;

function embeddingModelPath(): string {
  const file = process.env.EMBEDDING_MODEL_PATH;
  if (!file) throw new Error('EMBEDDING_MODEL_PATH not set: run e2e tests with npm test');
  return file;
}

const suite = useStack({ 'cpu-engine': { EMBEDDING_MODEL_PATH: embeddingModelPath() } });

const post = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${suite.stack.gatewayUrl}/v1/embeddings`, {
    method: 'POST',
    headers: { authorization: `Bearer ${suite.tenant.apiKey}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
const dot = (a: number[], b: number[]) => a.reduce((sum, value, index) => sum + value * b[index]!, 0);

async function usageOf(requestId: string | null) {
  return waitFor(async () => {
    const { rows } = await suite.db.query(
      `SELECT u.status, u.embedding_tokens, u.input_tokens, u.output_tokens, u.cost_micros, r.status AS hold
         FROM billing.usage_records u LEFT JOIN billing.reservations r ON r.id = u.reservation_id WHERE u.request_id = $1`,
      [requestId],
    );
    return rows.length ? rows : undefined;
  }, `the usage record of ${requestId}`);
}

describe('/v1/embeddings through gateway, billing, orchestrator, scheduler and the cpu-engine', () => {
  it('embeds with all-MiniLM-L6-v2 in the OpenAI shape, and bills exactly the tokens read against a hold', async () => {
    await suite.stack.waitUntilServing(suite.tenant.apiKey);
    const response = await suite.client.embeddings.create({ model: EMBEDDING_MODEL, input: ['A man is eating food.', 'A man is eating a piece of bread.'] }).withResponse();
    const body = response.data;
    expect(body.data.map((item) => item.index)).toEqual([0, 1]);
    const [first, second] = body.data.map((item) => item.embedding);
    expect(first).toHaveLength(384);
    expect(Math.sqrt(dot(first!, first!))).toBeCloseTo(1, 4);
    expect(dot(first!, second!)).toBeCloseTo(0.7553, 2);
    // [CLS] a man is eating food . [SEP] + [CLS] a man is eating a piece of bread . [SEP]
    expect(body.usage).toEqual({ prompt_tokens: 19, total_tokens: 19 });

    const [record] = await usageOf(response.response.headers.get('x-request-id'));
    expect(record).toMatchObject({ status: 'completed', embedding_tokens: 19, input_tokens: 0, output_tokens: 0, hold: 'settled' });
    expect(Number(record.cost_micros)).toBe(Math.ceil((19 * PRICE_PER_MILLION) / 1_000_000));

    // The caller's own usage report counts the embedding tokens.
    const report = (await (await fetch(`${suite.stack.gatewayUrl}/api/usage`, { headers: { authorization: `Bearer ${suite.tenant.apiKey}` } })).json()) as {
      totals: { embedding_tokens: number }; data: Array<{ model: string; embedding_tokens: number; requests: number }>;
    };
    expect(report.totals.embedding_tokens).toBe(19);
    expect(report.data).toContainEqual(expect.objectContaining({ model: EMBEDDING_MODEL, embedding_tokens: 19, requests: 1 }));
  });

  it('lists the embedding model in /v1/models and refuses it for chat with a 400', async () => {
    const models = (await (await fetch(`${suite.stack.gatewayUrl}/v1/models`, { headers: { authorization: `Bearer ${suite.tenant.apiKey}` } })).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((model) => model.id).sort()).toEqual([EMBEDDING_MODEL, 'gemma-3-270m']);
    const chat = await fetch(`${suite.stack.gatewayUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${suite.tenant.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: EMBEDDING_MODEL, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(chat.status).toBe(400);
    expect(((await chat.json()) as { error: { code: string; param: string } }).error).toMatchObject({ code: 'model_not_supported', param: 'model' });
  });

  it('answers base64 as little-endian float32 of the same vector', async () => {
    const floats = (await (await post({ model: EMBEDDING_MODEL, input: 'lighthouse keeper' })).json()) as { data: Array<{ embedding: number[] }> };
    const encoded = (await (await post({ model: EMBEDDING_MODEL, input: 'lighthouse keeper', encoding_format: 'base64' })).json()) as { data: Array<{ embedding: string }> };
    const bytes = Buffer.from(encoded.data[0]!.embedding, 'base64');
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
    expect(decoded).toEqual(floats.data[0]!.embedding);
  });

  it('replays a repeated Idempotency-Key without embedding or billing again', async () => {
    const count = async () =>
      Number((await suite.db.query(`SELECT count(*)::int AS n FROM billing.usage_records WHERE tenant_id = $1 AND model = $2`, [suite.tenant.tenantId, EMBEDDING_MODEL])).rows[0].n);
    const key = `embed-${randomUUID()}`;
    const request = { model: EMBEDDING_MODEL, input: 'the same text twice' };
    const first = await post(request, { 'idempotency-key': key });
    const firstBody = await first.text();
    await usageOf(first.headers.get('x-request-id'));
    const before = await count();
    const again = await post(request, { 'idempotency-key': key });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.headers.get('x-request-id')).toBe(first.headers.get('x-request-id'));
    expect(await again.text()).toBe(firstBody);
    // Usage events of one tenant arrive in order: once a later call is recorded, a second charge for the replay would be too.
    const sentinel = await post({ model: EMBEDDING_MODEL, input: 'a later, different call' });
    await usageOf(sentinel.headers.get('x-request-id'));
    expect(await count()).toBe(before + 1);
  });

  it('refuses bad requests with a 4xx in the error shape, holding and billing nothing', async () => {
    const cases: Array<[unknown, number, string | null]> = [
      [{ model: 'gemma-3-270m', input: 'a chat model' }, 404, 'model'],
      [{ model: 'text-embedding-3-small', input: 'not served here' }, 404, 'model'],
      [{ model: EMBEDDING_MODEL }, 400, null],
      [{ model: EMBEDDING_MODEL, input: [] }, 400, null],
      [{ model: EMBEDDING_MODEL, input: ['fine', ''] }, 400, 'input[1]'],
      [{ model: EMBEDDING_MODEL, input: [101, 2023, 102] }, 400, 'input'],
      [{ model: EMBEDDING_MODEL, input: 'x', dimensions: 128 }, 400, 'dimensions'],
      [{ model: EMBEDDING_MODEL, input: 'x', encoding_format: 'int8' }, 400, null],
      [{ model: EMBEDDING_MODEL, input: 'x', surprise: true }, 400, null],
    ];
    for (const [body, status, param] of cases) {
      const response = await post(body);
      const error = ((await response.json()) as { error: { type: string; message: string; param: string | null } }).error;
      expect([JSON.stringify(body), response.status]).toEqual([JSON.stringify(body), status]);
      expect(error.message.length).toBeGreaterThan(0);
      if (param) expect(error.param).toBe(param);
    }
    // Longer than the model reads (512 tokens): the engine refuses it, the hold is freed, nothing is billed.
    const tooLong = await post({ model: EMBEDDING_MODEL, input: ['fine', 'word '.repeat(600)] });
    expect(tooLong.status).toBe(400);
    expect(((await tooLong.json()) as { error: { message: string } }).error.message).toMatch(/512/);
    const requestId = tooLong.headers.get('x-request-id');
    const hold = await waitFor(async () => {
      const { rows } = await suite.db.query(`SELECT status FROM billing.reservations WHERE request_id = $1`, [requestId]);
      return rows[0]?.status === 'released' ? rows[0] : undefined;
    }, 'the refused request\'s hold to be released');
    expect(hold.status).toBe('released');
    const { rows } = await suite.db.query(`SELECT count(*)::int AS n FROM billing.usage_records WHERE request_id = $1`, [requestId]);
    expect(rows[0].n).toBe(0);
    // Still serving.
    expect((await post({ model: EMBEDDING_MODEL, input: 'still here' })).status).toBe(200);
  });
});
