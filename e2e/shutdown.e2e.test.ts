import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { MODEL, waitFor, type ServiceName } from './support/stack';
import { useStack } from './support/suite';

const suite = useStack();

/**
 * Opens a stream, sends SIGTERM to `service` once the first token arrived, and
 * reads the stream to its end. A clean end is either the whole answer (the
 * service drained it) or an error event the client understands; never a cut socket.
 */
async function streamWhileStopping(service: ServiceName, maxTokens: number) {
  const stream = await suite.client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'Write a long story about a lighthouse keeper.' }],
    stream: true, stream_options: { include_usage: true }, max_tokens: maxTokens, temperature: 0,
  });
  let exit: Promise<number | null> | undefined;
  let text = '';
  let id = '';
  let finishReason: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  let error: unknown;
  try {
    for await (const chunk of stream) {
      id = chunk.id;
      const content = chunk.choices[0]?.delta?.content ?? '';
      text += content;
      finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
      if (chunk.usage) usage = chunk.usage;
      if (content && !exit) exit = suite.stack.kill(service, 'SIGTERM');
    }
  } catch (caught) {
    error = caught;
  }
  return { text, finishReason, usage, error, exitCode: await exit, requestId: id.replace(/^chatcmpl-/, '') };
}

describe('SIGTERM to any service while a stream is open', () => {
  it.each(['gateway', 'orchestrator', 'inference-scheduler', 'cpu-engine', 'billing'] as ServiceName[])(
    '%s drains the stream to its end and exits 0',
    async (service) => {
      const result = await streamWhileStopping(service, 48);
      expect(result.error).toBeUndefined();
      expect(result.text.length).toBeGreaterThan(0);
      expect(['stop', 'length']).toContain(result.finishReason);
      expect(result.usage?.completion_tokens).toBeGreaterThan(0);
      expect(result.exitCode).toBe(0);
      await suite.stack.startService(service);
      await suite.stack.waitUntilServing(suite.tenant.apiKey, MODEL, { generate: true });
      // The turn is billed even when billing itself was the one restarted: the
      // usage event waited in Kafka.
      const record = await waitFor(async () => {
        const { rows } = await suite.db.query(`SELECT output_tokens FROM billing.usage_records WHERE request_id = $1`, [result.requestId]);
        return rows[0];
      }, 'the usage record');
      expect(Number(record.output_tokens)).toBe(result.usage!.completion_tokens);
    },
  );

  it('ends the stream with a clean error event when the engine must stop before the answer is done', async () => {
    await suite.stack.kill('cpu-engine');
    await suite.stack.startService('cpu-engine', { SHUTDOWN_GRACE_MS: '200' });
    await suite.stack.waitUntilServing(suite.tenant.apiKey, MODEL, { generate: true });
    const result = await streamWhileStopping('cpu-engine', 400);
    // No text means the stream ended before a token, so SIGTERM was never sent.
    expect(result.text.length, `stream ended before its first token: ${String(result.error)}`).toBeGreaterThan(0);
    expect(result.exitCode).toBe(0);
    expect(result.error).toBeInstanceOf(OpenAI.APIError);
    expect(result.error).not.toBeInstanceOf(OpenAI.APIConnectionError);
    expect((result.error as Error).message.length).toBeGreaterThan(0);
    await suite.stack.startService('cpu-engine');
    await suite.stack.waitUntilServing(suite.tenant.apiKey, MODEL, { generate: true });
    // The tokens produced before the cut are still billed.
    const record = await waitFor(async () => {
      const { rows } = await suite.db.query(`SELECT status, output_tokens FROM billing.usage_records WHERE request_id = $1`, [result.requestId]);
      return rows[0];
    }, 'the usage record of the cut stream');
    expect(Number(record.output_tokens)).toBeGreaterThan(0);
  });

  it('answers 503 with Retry-After, not a 200 stream, when no engine can start the answer; the hold is freed and the Idempotency-Key stays unspent', async () => {
    await suite.stack.kill('cpu-engine');
    const idempotencyKey = `engine-down-${randomUUID()}`;
    const ask = () => fetch(`${suite.stack.gatewayUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${suite.tenant.apiKey}`, 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Say hello.' }], stream: true, stream_options: { include_usage: true }, max_tokens: 8 }),
    });
    const refused = await ask();
    const body = (await refused.json()) as { error: { type: string; code: string; message: string } };
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(body.error.type).toBe('service_unavailable');
    expect(body.error.message.length).toBeGreaterThan(0);
    const requestId = refused.headers.get('x-request-id');
    const hold = await waitFor(async () => {
      const { rows } = await suite.db.query(`SELECT status FROM billing.reservations WHERE request_id = $1`, [requestId]);
      return rows[0] && rows[0].status !== 'held' ? rows[0] : undefined;
    }, 'the refused request\'s hold to be freed');
    expect(['released', 'settled']).toContain(hold.status);

    await suite.stack.startService('cpu-engine');
    await suite.stack.waitUntilServing(suite.tenant.apiKey, MODEL, { generate: true });
    // The refusal was not stored as the key's answer: the retry runs and streams.
    const retried = await ask();
    const text = await retried.text();
    expect(retried.status).toBe(200);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
    expect(text).toContain('data: [DONE]');
    expect(text).toContain('"usage":{');
  });
});
