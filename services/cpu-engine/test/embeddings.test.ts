import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '@ai-platform/platform';
import { EMBEDDING_MODEL, embeddingModelPath, json, postJson, startInProcess } from './support/engine';

let service: RunningService<unknown>;
let url: string;
let openai: OpenAI;

beforeAll(async () => {
  service = await startInProcess({ EMBEDDING_MODEL_PATH: embeddingModelPath(), EMBEDDING_MAX_INPUTS: '8' });
  url = service.httpUrl;
  openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
}, 120_000);

afterAll(async () => {
  await service?.shutdown('test end');
});

const cosine = (a: number[], b: number[]) => a.reduce((sum, value, index) => sum + value * b[index]!, 0);
const embed = (body: Record<string, unknown>) => postJson(`${url}/v1/embeddings`, { model: EMBEDDING_MODEL, ...body });

describe('POST /v1/embeddings (all-MiniLM-L6-v2 converted by infra/local/bert-to-gguf.mjs)', () => {
  it('gives the similarities sentence-transformers gives, with unit vectors of 384 dimensions, in input order', async () => {
    const texts = ['A man is eating food.', 'A man is eating a piece of bread.', 'The girl is carrying a baby.', 'A man is riding a horse.'];
    const response = await openai.embeddings.create({ model: EMBEDDING_MODEL, input: texts, encoding_format: 'float' });
    expect(response.data.map((item) => item.index)).toEqual([0, 1, 2, 3]);
    const vectors = response.data.map((item) => item.embedding);
    for (const vector of vectors) {
      expect(vector).toHaveLength(384);
      expect(Math.sqrt(cosine(vector, vector))).toBeCloseTo(1, 5);
    }
    // sentence-transformers' documented example for this model: 0.7553 for the first pair.
    expect(cosine(vectors[0]!, vectors[1]!)).toBeCloseTo(0.7553, 2);
    expect(cosine(vectors[0]!, vectors[3]!)).toBeCloseTo(0.2474, 1);
    expect(cosine(vectors[0]!, vectors[2]!)).toBeLessThan(0.1);
    // [CLS] a man is eating food . [SEP]
    expect(response.usage).toEqual({ prompt_tokens: expect.any(Number), total_tokens: response.usage.prompt_tokens });
    const one = await json(await embed({ input: 'A man is eating food.' }));
    expect(one.usage.prompt_tokens).toBe(8);
    expect(one.data[0].embedding).toEqual(vectors[0]);
  });

  it('answers base64 as little-endian float32, the same vector', async () => {
    const floats = await json(await embed({ input: 'lighthouse keeper' }));
    const encoded = await json(await embed({ input: 'lighthouse keeper', encoding_format: 'base64' }));
    const bytes = Buffer.from(encoded.data[0].embedding, 'base64');
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
    expect(decoded).toHaveLength(384);
    decoded.forEach((value, index) => expect(value).toBeCloseTo(floats.data[0].embedding[index], 6));
  });

  it('refuses bad requests with a 400 that names the parameter, and an unknown model with 404', async () => {
    const refusal = async (body: Record<string, unknown>) => {
      const response = await postJson(`${url}/v1/embeddings`, body);
      return { status: response.status, error: (await json(response)).error };
    };
    expect(await refusal({ model: EMBEDDING_MODEL })).toMatchObject({ status: 400, error: { param: 'input' } });
    expect(await refusal({ model: EMBEDDING_MODEL, input: '' })).toMatchObject({ status: 400, error: { param: 'input' } });
    expect(await refusal({ model: EMBEDDING_MODEL, input: [] })).toMatchObject({ status: 400, error: { param: 'input' } });
    expect(await refusal({ model: EMBEDDING_MODEL, input: [1, 2, 3] })).toMatchObject({ status: 400 });
    expect(await refusal({ model: EMBEDDING_MODEL, input: ['ok', ''] })).toMatchObject({ status: 400, error: { param: 'input[1]' } });
    expect(await refusal({ model: EMBEDDING_MODEL, input: Array(9).fill('x') })).toMatchObject({ status: 400, error: { param: 'input' } });
    expect(await refusal({ model: EMBEDDING_MODEL, input: 'x', dimensions: 128 })).toMatchObject({ status: 400, error: { param: 'dimensions' } });
    expect(await refusal({ model: EMBEDDING_MODEL, input: 'x', encoding_format: 'int8' })).toMatchObject({ status: 400, error: { param: 'encoding_format' } });
    expect(await refusal({ model: EMBEDDING_MODEL, input: ['fine', 'word '.repeat(600)] })).toMatchObject({ status: 400, error: { param: 'input[1]', code: 'context_length_exceeded' } });
    expect(await refusal({ model: 'gemma-3-270m', input: 'x' })).toMatchObject({ status: 404, error: { code: 'model_not_found' } });
    // Still serving after all of that.
    expect((await embed({ input: 'still here' })).status).toBe(200);
  });

  it('embeds concurrent requests each correctly (one context, queued)', async () => {
    const texts = ['first request', 'second request', 'third request', 'fourth request', 'fifth request', 'sixth request'];
    const alone = await Promise.all(texts.map(async (text) => (await json(await embed({ input: text }))).data[0].embedding as number[]));
    const together = (await json(await embed({ input: texts }))).data.map((item: { embedding: number[] }) => item.embedding);
    together.forEach((vector: number[], index: number) => expect(cosine(vector, alone[index]!)).toBeCloseTo(1, 5));
  });

  it('reports the embedding model in readiness and lists it marked "task": "embed"', async () => {
    const ready = await json(await fetch(`${url}/readyz`));
    expect(ready).toMatchObject({ status: 'ready', checks: { model: 'ok', embedding_model: 'ok' } });
    const models = await json(await fetch(`${url}/v1/models`));
    expect(models.data).toEqual([
      expect.objectContaining({ id: 'gemma-3-270m', object: 'model' }),
      expect.objectContaining({ id: EMBEDDING_MODEL, object: 'model', max_model_len: 512, task: 'embed' }),
    ]);
    expect(models.data[0].task).toBeUndefined();
    expect(await json(await fetch(`${url}/v1/models/${EMBEDDING_MODEL}`))).toMatchObject({ id: EMBEDDING_MODEL, task: 'embed' });
  });
});
