import { describe, expect, it } from 'vitest';
import { readSse, SseParser, SseProtocolError, type SseEvent } from '../src/engines/sse';

function parseAll(chunks: string[]): SseEvent[] {
  const parser = new SseParser();
  return [...chunks.flatMap((chunk) => parser.push(chunk)), ...parser.end()];
}

const stream = 'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n';

describe('SseParser', () => {
  it('parses complete events', () => {
    expect(parseAll([stream]).map((event) => event.data)).toEqual(['{"a":1}', '{"b":2}', '[DONE]']);
  });

  it('gives the same events however the stream is split, one character at a time included', () => {
    const whole = parseAll([stream]);
    for (let cut = 1; cut < stream.length; cut++) {
      expect(parseAll([stream.slice(0, cut), stream.slice(cut)])).toEqual(whole);
    }
    expect(parseAll([...stream])).toEqual(whole);
  });

  it('accepts CRLF and CR line endings, also with CR and LF in different chunks', () => {
    expect(parseAll(['data: x\r\n\r\ndata: y\r\r']).map((event) => event.data)).toEqual(['x', 'y']);
    expect(parseAll(['data: x\r', '\n\r', '\ndata: y\r', '\n\r\n']).map((event) => event.data)).toEqual(['x', 'y']);
    // A lone CR at a chunk end followed by an empty chunk, then LF: still one line break.
    expect(parseAll(['data: x\r', '', '\n', '\n']).map((event) => event.data)).toEqual(['x']);
  });

  it('joins multi-line data with newlines and keeps event names and ids', () => {
    const events = parseAll(['event: update\nid: 7\ndata: line one\ndata:line two\ndata\n\n']);
    expect(events).toEqual([{ event: 'update', data: 'line one\nline two\n', id: '7' }]);
  });

  it('ignores comments, retry and unknown fields, and events without data', () => {
    const events = parseAll([': keep-alive\n\nretry: 1000\nfoo: bar\n\nevent: ping\n\ndata: ok\n\n']);
    expect(events).toEqual([{ event: 'message', data: 'ok' }]);
  });

  it('strips only one leading space of a value and a leading BOM', () => {
    expect(parseAll(['\uFEFFdata:  two spaces\n\n'])).toEqual([{ event: 'message', data: ' two spaces' }]);
  });

  it('dispatches a last data line without the closing blank line at end of stream', () => {
    expect(parseAll(['data: a\n\ndata: [DONE]\n']).map((event) => event.data)).toEqual(['a', '[DONE]']);
    expect(parseAll(['data: a\n\ndata: [DONE]']).map((event) => event.data)).toEqual(['a', '[DONE]']);
  });

  it('passes garbage lines through as data or drops them, never throws on them', () => {
    const events = parseAll(['\u0000\u0001garbage\n', 'data: {not json\n\n', '::::\n\n']);
    expect(events).toEqual([{ event: 'message', data: '{not json' }]);
  });

  it('throws on a line longer than its limit instead of buffering without bound', () => {
    const parser = new SseParser(100);
    expect(() => parser.push('data: ' + 'x'.repeat(200))).toThrow(SseProtocolError);
  });

  it('readSse decodes UTF-8 split inside a multi-byte character', async () => {
    const bytes = new TextEncoder().encode('data: héllo 🌍\n\n');
    async function* body() {
      for (const byte of bytes) yield new Uint8Array([byte]);
    }
    const events: SseEvent[] = [];
    for await (const event of readSse(body())) events.push(event);
    expect(events).toEqual([{ event: 'message', data: 'héllo 🌍' }]);
  });
});
