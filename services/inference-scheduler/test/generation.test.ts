import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { common, inference } from '@ai-platform/contracts';
import { GrpcError, GrpcStatus } from '@ai-platform/platform';
import { EngineFailure, engineErrorMessage, parseChatChunk } from '../src/engines/chat-stream';
import { backoffDelay, meteredTokens } from '../src/generation/generation.service';
import { priorityName, toEngineRequest, validateGenerate } from '../src/generation/validate';
import { estimateInputTokens } from '../src/metering/token-estimate';

const context = { tenantId: 'tenant-1', userId: 'user-1', requestId: 'req-1' };
const request = (init: Parameters<typeof create<typeof inference.GenerateRequestSchema>>[1] = {}) =>
  create(inference.GenerateRequestSchema, { model: 'm', messages: [{ role: 'user', content: 'hello' }], ...init });

function rejection(fn: () => unknown): GrpcError {
  try {
    fn();
  } catch (error) {
    return error as GrpcError;
  }
  throw new Error('expected a rejection');
}

describe('validateGenerate', () => {
  it('accepts a plain request and fills the metering fields', () => {
    const call = validateGenerate(request({ sampling: { maxTokens: 16, temperature: 0.5, topP: 0.9, stop: ['\n\n'], seed: 42n }, reservationId: 'res-1', apiKeyId: 'key_1', priority: common.Priority.BATCH }), context);
    expect(call).toMatchObject({ model: 'm', tenantId: 'tenant-1', userId: 'user-1', requestId: 'req-1', reservationId: 'res-1', apiKeyId: 'key_1', priority: 'batch', maxTokens: 16, seed: 42 });
    expect(toEngineRequest(call, { continuousUsage: true })).toEqual({
      model: 'm',
      messages: [{ role: 'user', content: 'hello' }],
      stream: true,
      stream_options: { include_usage: true, continuous_usage_stats: true },
      max_tokens: 16,
      temperature: 0.5,
      top_p: 0.9,
      stop: ['\n\n'],
      seed: 42,
    });
  });

  it('omits unset sampling parameters from the engine request', () => {
    const body = toEngineRequest(validateGenerate(request(), context), { continuousUsage: false });
    expect(body).toEqual({ model: 'm', messages: [{ role: 'user', content: 'hello' }], stream: true, stream_options: { include_usage: true } });
  });

  it('generates a request id when the caller sent none', () => {
    expect(validateGenerate(request(), { tenantId: 't' }).requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    ['no tenant', request(), {}, /x-tenant-id/],
    ['no model', request({ model: '' }), context, /model is required/],
    ['no messages', request({ messages: [] }), context, /at least one message/],
    ['bad role', request({ messages: [{ role: 'wizard', content: 'x' }] }), context, /role must be one of/],
    ['all empty', request({ messages: [{ role: 'user', content: '' }] }), context, /must not all be empty/],
    ['temperature', request({ sampling: { temperature: 3 } }), context, /temperature/],
    ['top_p', request({ sampling: { topP: 0 } }), context, /top_p/],
    ['stop count', request({ sampling: { stop: Array.from({ length: 17 }, () => 'x') } }), context, /at most 16/],
    ['empty stop', request({ sampling: { stop: [''] } }), context, /stop\[0\]/],
    ['seed', request({ sampling: { seed: 2n ** 60n } }), context, /seed/],
    ['reservation id', request({ reservationId: 'has space' }), context, /reservation_id/],
  ])('rejects %s with INVALID_ARGUMENT', (_name, input, callContext, message) => {
    const error = rejection(() => validateGenerate(input, callContext));
    expect(error).toBeInstanceOf(GrpcError);
    expect(error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(error.message).toMatch(message);
  });

  it('names the priority lane from the request, else the header, else interactive standard', () => {
    expect(priorityName(common.Priority.INTERACTIVE_PREMIUM, 'batch')).toBe('interactive_premium');
    expect(priorityName(common.Priority.UNSPECIFIED, 'BATCH')).toBe('batch');
    expect(priorityName(common.Priority.UNSPECIFIED, 'PRIORITY_BATCH')).toBe('batch');
    expect(priorityName(common.Priority.UNSPECIFIED, 'x; drop table')).toBe('interactive_standard');
    expect(priorityName(common.Priority.UNSPECIFIED, undefined)).toBe('interactive_standard');
  });
});

describe('parseChatChunk', () => {
  it('reads content, finish reason and usage', () => {
    expect(parseChatChunk('{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}')).toEqual({ text: '' });
    expect(parseChatChunk('{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}')).toEqual({ text: 'Hi' });
    expect(parseChatChunk('{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}')).toEqual({ text: '', finishReason: 'length' });
    expect(parseChatChunk('{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4}}}')).toEqual({
      text: '',
      usage: { promptTokens: 10, completionTokens: 3, cachedTokens: 4 },
    });
  });

  it('reads continuous usage carried on content chunks', () => {
    expect(parseChatChunk('{"choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":5,"completion_tokens":1}}')).toEqual({ text: 'a', usage: { promptTokens: 5, completionTokens: 1, cachedTokens: 0 } });
  });

  it.each(['not json', '42', '[]', 'null', '{}', '{"choices":"x"}', '{"choices":[{"delta":{"content":7}}]}'])('rejects %s as a protocol failure', (data) => {
    expect(() => parseChatChunk(data)).toThrow(EngineFailure);
    try {
      parseChatChunk(data);
    } catch (error) {
      expect((error as EngineFailure).kind).toBe('protocol');
    }
  });

  it('turns an in-stream error object into a stream failure with its message', () => {
    try {
      parseChatChunk('{"error":{"message":"engine overloaded","type":"server_error","code":500}}');
      expect.unreachable();
    } catch (error) {
      expect((error as EngineFailure).kind).toBe('stream');
      expect((error as EngineFailure).options.engineMessage).toBe('engine overloaded');
    }
  });

  it('extracts the message of OpenAI, vLLM and FastAPI error bodies', () => {
    expect(engineErrorMessage('{"error":{"message":"too long","type":"BadRequestError"}}')).toBe('too long');
    expect(engineErrorMessage('{"object":"error","message":"bad","type":"BadRequestError","code":400}')).toBe('bad');
    expect(engineErrorMessage('{"detail":[{"loc":["body"],"msg":"field required"}]}')).toContain('field required');
    expect(engineErrorMessage('  plain text  ')).toBe('plain text');
    expect(engineErrorMessage('')).toBe('no message');
  });
});

describe('metering arithmetic', () => {
  const messages = [{ role: 'user', content: 'hello world' }];

  it('uses the engine usage of a completed call', () => {
    expect(meteredTokens('completed', { outputChunks: 3, usage: { promptTokens: 9, completionTokens: 4, cachedTokens: 2 } }, messages)).toEqual({ inputTokens: 9, cachedInputTokens: 2, outputTokens: 4 });
  });

  it('counts chunks and estimates input for an aborted call without usage', () => {
    expect(meteredTokens('aborted', { outputChunks: 5 }, messages)).toEqual({ inputTokens: estimateInputTokens(messages), cachedInputTokens: 0, outputTokens: 5 });
  });

  it('prefers the running usage of an aborted call when the engine sent it', () => {
    expect(meteredTokens('aborted', { outputChunks: 5, usage: { promptTokens: 7, completionTokens: 6, cachedTokens: 0 } }, messages)).toEqual({ inputTokens: 7, cachedInputTokens: 0, outputTokens: 6 });
  });

  it('charges nothing for a failed call that produced nothing', () => {
    expect(meteredTokens('failed', { outputChunks: 0 }, messages)).toEqual({ inputTokens: 0, cachedInputTokens: 0, outputTokens: 0 });
  });

  it('estimates input tokens on the high side', () => {
    // 'hello world' is 2 to 3 tokens in any subword vocabulary, 'user' 1.
    expect(estimateInputTokens(messages)).toBeGreaterThanOrEqual(8 + 8 + 2 + 4);
    expect(estimateInputTokens([{ role: 'user', content: 'é'.repeat(300) }])).toBeGreaterThanOrEqual(200);
  });

  it('backs off exponentially with jitter, capped', () => {
    expect(backoffDelay(1, 100, 2_000, () => 0)).toBe(50);
    expect(backoffDelay(1, 100, 2_000, () => 1)).toBe(100);
    expect(backoffDelay(3, 100, 2_000, () => 1)).toBe(400);
    expect(backoffDelay(10, 100, 2_000, () => 1)).toBe(2_000);
    expect(backoffDelay(10, 100, 2_000, () => 0.5)).toBe(1_500);
  });
});
