import { describe, expect, it } from 'vitest';
import { ApiError } from '@ai-platform/platform';
import { parseChatRequest, worstCaseInputTokens } from '../src/openai/chat-request';

const valid = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };

function rejection(body: unknown): ApiError {
  try {
    parseChatRequest(body);
  } catch (error) {
    return error as ApiError;
  }
  throw new Error('expected a rejection');
}

describe('parseChatRequest', () => {
  it('accepts a minimal request and content parts', () => {
    expect(parseChatRequest(valid).model).toBe('m');
    expect(parseChatRequest({ ...valid, messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }] }] }).messages).toHaveLength(1);
  });

  it.each([
    ['a non-object body', [], null],
    ['a missing model', { messages: valid.messages }, 'model'],
    ['empty messages', { ...valid, messages: [] }, 'messages'],
    ['a wrong type', { ...valid, max_tokens: 'ten' }, 'max_tokens'],
    ['a negative max_tokens', { ...valid, max_tokens: -1 }, 'max_tokens'],
    ['a fractional max_tokens', { ...valid, max_tokens: 1.5 }, 'max_tokens'],
    ['an unknown role', { ...valid, messages: [{ role: 'root', content: 'x' }] }, 'messages.0.role'],
    ['temperature out of range', { ...valid, temperature: 9 }, 'temperature'],
    ['too many stop sequences', { ...valid, stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    ['n > 1', { ...valid, n: 2 }, 'n'],
  ])('rejects %s with a 400 naming the field', (_name, body, param) => {
    const error = rejection(body);
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(400);
    expect(error.param).toBe(param);
  });

  it('names unknown fields, also nested ones', () => {
    const top = rejection({ ...valid, frobnicate: 1 });
    expect(top.message).toBe('Unrecognized request argument supplied: frobnicate');
    expect(top.code).toBe('unknown_parameter');
    expect(rejection({ ...valid, messages: [{ role: 'user', content: 'x', extra: 1 }] }).message).toContain('messages.0.extra');
  });

  it('survives deeply nested JSON without a stack overflow', () => {
    let nested: unknown = 'x';
    for (let depth = 0; depth < 10_000; depth++) nested = { a: nested };
    expect(rejection({ ...valid, metadata: nested }).status).toBe(400);
  });
});

describe('worstCaseInputTokens', () => {
  it('is at least one token per UTF-8 byte plus per-message overhead', () => {
    const messages = [{ role: 'user', content: 'héllo 👋' }];
    expect(worstCaseInputTokens(messages)).toBeGreaterThanOrEqual(Buffer.byteLength('héllo 👋') + 8);
    expect(worstCaseInputTokens([...messages, ...messages])).toBeGreaterThan(worstCaseInputTokens(messages));
  });
});
