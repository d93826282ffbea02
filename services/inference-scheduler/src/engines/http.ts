import { Agent, request, type Dispatcher } from 'undici';

/**
 * The scheduler's HTTP client for engines: undici's `request` over one
 * keep-alive pool. It sits on every model call, and the WHATWG `fetch` it
 * replaces (Response, web streams, an AbortError built with a stack trace on
 * every early cancel) cost 0.3-0.8 ms of CPU per streamed call against
 * 0.05-0.2 ms for `request` (bench/results/gateway.md). Every caller bounds its
 * waits with its own signal, so undici's timeouts stay a last resort.
 */
const engines = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000 });

export type EngineBody = Dispatcher.ResponseData['body'];

export interface EngineResponse {
  status: number;
  ok: boolean;
  body: EngineBody;
}

export interface EngineRequest {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** Aborting it destroys the request and its socket, so the engine sees the client leave. */
  signal: AbortSignal;
}

export async function send(url: string, init: EngineRequest): Promise<EngineResponse> {
  const response = await request(url, { method: init.method ?? 'GET', headers: init.headers, body: init.body, signal: init.signal, dispatcher: engines });
  return { status: response.statusCode, ok: response.statusCode >= 200 && response.statusCode < 300, body: response.body };
}

/** Reads at most `limit` bytes of a response body as text; the rest is discarded. */
export async function readBodyText(response: EngineResponse, limit: number): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  let size = 0;
  // Leaving the loop early (limit, error) destroys the body and closes its connection; read to its end, the connection is kept.
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    text += decoder.decode(size > limit ? chunk.subarray(0, Math.max(0, chunk.byteLength - (size - limit))) : chunk, { stream: true });
    if (size >= limit) break;
  }
  return text + decoder.decode();
}

/** Reads a body that is not needed to its end (a small one), so its connection is kept for the next request. */
export async function discard(response: EngineResponse): Promise<void> {
  await response.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
}

/** An error's message, with its cause's (a socket error is often the cause). */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}
