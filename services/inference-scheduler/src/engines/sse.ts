/** One dispatched server-sent event. */
export interface SseEvent {
  /** The `event:` field; `message` when absent. */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
  id?: string;
}

export class SseProtocolError extends Error {}

/**
 * Incremental parser for `text/event-stream` (WHATWG HTML, "event stream
 * interpretation"). Feed it text as it arrives, in chunks split anywhere (also
 * between `\r` and `\n`); it returns the events completed by each chunk.
 * Comments, `retry:` and unknown fields are ignored. A line longer than
 * `maxLineLength` (a peer that sends garbage without newlines) throws instead
 * of buffering without bound.
 */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private eventType = '';
  private lastId: string | undefined;
  private first = true;
  /** The previous chunk ended with `\r`: a `\n` starting the next one belongs to it. */
  private pendingCr = false;

  constructor(private readonly maxLineLength = 1024 * 1024) {}

  push(chunk: string): SseEvent[] {
    if (chunk.length === 0) return [];
    if (this.first && chunk.length > 0) {
      this.first = false;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    if (this.pendingCr && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.pendingCr = false;
    const events: SseEvent[] = [];
    let text = this.buffer + chunk;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code !== 0x0a && code !== 0x0d) continue;
      this.line(text.slice(start, i), events);
      if (code === 0x0d) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 0x0a) i++;
        } else {
          this.pendingCr = true;
        }
      }
      start = i + 1;
    }
    text = text.slice(start);
    if (text.length > this.maxLineLength) throw new SseProtocolError(`event-stream line longer than ${this.maxLineLength} characters`);
    this.buffer = text;
    return events;
  }

  /**
   * Ends the stream. The spec drops an event not terminated by a blank line; a
   * complete last line with data is still dispatched here, since some servers
   * end the body right after `data: [DONE]\n`.
   */
  end(): SseEvent[] {
    const events: SseEvent[] = [];
    if (this.buffer.length > 0) {
      this.line(this.buffer, events);
      this.buffer = '';
    }
    this.dispatch(events);
    return events;
  }

  private line(line: string, events: SseEvent[]) {
    if (line.length === 0) {
      this.dispatch(events);
      return;
    }
    if (line.charCodeAt(0) === 0x3a /* ':' comment */) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        break;
      case 'event':
        this.eventType = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
      default:
        // `retry` and unknown fields: ignored.
        break;
    }
  }

  private dispatch(events: SseEvent[]) {
    if (this.data.length > 0) {
      events.push({ event: this.eventType || 'message', data: this.data.join('\n'), ...(this.lastId !== undefined ? { id: this.lastId } : {}) });
    }
    this.data = [];
    this.eventType = '';
  }
}

/** Decodes a byte stream and yields its server-sent events. */
export async function* readSse(body: AsyncIterable<Uint8Array>, maxLineLength?: number): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder('utf-8');
  const parser = new SseParser(maxLineLength);
  for await (const bytes of body) {
    yield* parser.push(decoder.decode(bytes, { stream: true }));
  }
  yield* parser.push(decoder.decode());
  yield* parser.end();
}
