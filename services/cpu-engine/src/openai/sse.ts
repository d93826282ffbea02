import type { FastifyReply } from 'fastify';

/**
 * Server-sent events on the raw response, in OpenAI's framing: one
 * `data: <json>\n\n` per chunk and a final `data: [DONE]\n\n`. Writes never
 * wait for the client: like vLLM, generation runs at engine speed and a slow
 * reader's chunks are buffered, which is bounded (max_tokens <= context, a few
 * hundred bytes per token), so a stalled client cannot pin a sequence.
 */
export class SseStream {
  private opened = false;

  constructor(private readonly reply: FastifyReply) {}

  /** True once the response has ended or the client went away. */
  get closed(): boolean {
    return this.reply.raw.writableEnded || this.reply.raw.destroyed;
  }

  /** Takes the response over from Fastify and sends the SSE headers. */
  open(): void {
    if (this.opened) return;
    this.opened = true;
    this.reply.hijack();
    const headers: Record<string, string | number | string[]> = {};
    for (const [name, value] of Object.entries(this.reply.getHeaders())) if (value !== undefined) headers[name] = value;
    this.reply.raw.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    // Headers out now, not with the first token: a queued request is visibly accepted.
    this.reply.raw.flushHeaders();
  }

  send(data: unknown): void {
    if (this.closed) return;
    this.reply.raw.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends the stream the OpenAI way. */
  done(): void {
    if (this.closed) return;
    this.reply.raw.end('data: [DONE]\n\n');
  }

  /** Ends the stream with a final error event (the stream's headers are already out), then [DONE]. */
  fail(error: unknown): void {
    if (this.closed) return;
    this.reply.raw.write(`data: ${JSON.stringify(error)}\n\n`);
    this.done();
  }
}
