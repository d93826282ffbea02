import type { ServerResponse } from 'node:http';

/** Writes Server-Sent Events with backpressure; stops quietly once the client is gone. */
export class SseWriter {
  constructor(private readonly response: ServerResponse) {}

  get closed(): boolean {
    return this.response.writableEnded || this.response.destroyed;
  }

  open(headers: Record<string, string>): void {
    this.response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      ...headers,
    });
    this.response.flushHeaders();
  }

  async data(payload: unknown): Promise<void> {
    if (this.closed) return;
    const ok = this.response.write(`data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`);
    if (!ok && !this.closed) await new Promise<void>((resolve) => {
      const done = () => {
        this.response.off('drain', done);
        this.response.off('close', done);
        resolve();
      };
      this.response.once('drain', done);
      this.response.once('close', done);
    });
  }

  end(): void {
    if (!this.closed) this.response.end();
  }
}
