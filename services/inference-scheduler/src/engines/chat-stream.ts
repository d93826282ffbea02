import { injectTraceContext } from '@ai-platform/platform';
import type { Engine } from './engine';
import { errorMessage, readBodyText, send, type EngineResponse } from './http';
import { SseParser } from './sse';

/** The body of vLLM's `POST /v1/chat/completions` that the scheduler sends. */
export interface ChatCompletionRequest {
  model: string;
  messages: Array<{ role: string; content: string }>;
  stream: true;
  stream_options: { include_usage: true; continuous_usage_stats?: boolean };
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  stop?: string[];
  seed?: number;
}

export interface EngineUsage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

/** One parsed chunk of the engine's stream. */
export type ChatStreamEvent =
  /** Response headers arrived with a 2xx status: the engine has the request. */
  | { type: 'open' }
  | { type: 'chunk'; text: string; finishReason?: string; usage?: EngineUsage };

export type EngineFailureKind = 'connect' | 'http' | 'protocol' | 'stalled' | 'stream';

/** The engine could not serve the request, or broke off. */
export class EngineFailure extends Error {
  constructor(
    readonly kind: EngineFailureKind,
    message: string,
    readonly options: { status?: number; retryable: boolean; engineMessage?: string },
  ) {
    super(message);
  }

  get retryable(): boolean {
    return this.options.retryable;
  }
}

/** The caller's signal fired (client cancel, deadline, drain); `reason` is the signal's reason. */
export class CallAborted extends Error {
  constructor(readonly reason: unknown) {
    super('call aborted');
  }
}

const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** Statuses worth another engine: overload, timeouts, a model the engine no longer serves, server faults. */
function retryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429 || status === 404;
}

/** The message of an OpenAI/vLLM error body (`{"error":{"message"}}`, `{"message"}`, `{"detail"}`), else the raw text. */
export function engineErrorMessage(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
    const candidates = [typeof body.error === 'object' ? body.error?.message : body.error, body.message, body.detail];
    for (const candidate of candidates) if (typeof candidate === 'string' && candidate.length > 0) return candidate.slice(0, 2_000);
    if (body.detail !== undefined) return JSON.stringify(body.detail).slice(0, 2_000);
  } catch {
    // not JSON
  }
  return text.trim().slice(0, 2_000) || 'no message';
}

function toCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

/**
 * Interprets one `data:` payload of a chat completion stream. Throws
 * EngineFailure('protocol') for anything that is not a chunk, and
 * EngineFailure('stream') for an error object sent in the stream.
 */
export function parseChatChunk(data: string): { text: string; finishReason?: string; usage?: EngineUsage } {
  let body: unknown;
  try {
    body = JSON.parse(data);
  } catch {
    throw new EngineFailure('protocol', `engine sent a chunk that is not JSON: ${JSON.stringify(data.slice(0, 200))}`, { retryable: true });
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new EngineFailure('protocol', `engine sent a chunk that is not an object: ${data.slice(0, 200)}`, { retryable: true });
  }
  const chunk = body as { object?: unknown; error?: unknown; message?: unknown; choices?: unknown; usage?: unknown };
  if (chunk.error !== undefined || chunk.object === 'error') {
    const message = engineErrorMessage(data);
    throw new EngineFailure('stream', `engine reported an error in the stream: ${message}`, { retryable: true, engineMessage: message });
  }
  if (chunk.choices !== undefined && !Array.isArray(chunk.choices)) {
    throw new EngineFailure('protocol', `engine sent a chunk whose "choices" is not an array: ${data.slice(0, 200)}`, { retryable: true });
  }
  const choices = (chunk.choices as unknown[] | undefined) ?? [];
  if (choices.length === 0 && (chunk.usage === undefined || chunk.usage === null)) {
    throw new EngineFailure('protocol', `engine sent a chunk with neither choices nor usage: ${data.slice(0, 200)}`, { retryable: true });
  }
  let text = '';
  let finishReason: string | undefined;
  for (const choice of choices) {
    const { index, delta, finish_reason: reason } = (choice ?? {}) as { index?: unknown; delta?: { content?: unknown } | null; finish_reason?: unknown };
    if (index !== undefined && index !== 0) continue; // n = 1: only the first choice exists
    const content = delta?.content;
    if (typeof content === 'string') text += content;
    else if (content !== undefined && content !== null) throw new EngineFailure('protocol', 'engine sent a delta whose content is not a string', { retryable: true });
    if (typeof reason === 'string' && reason.length > 0) finishReason = reason;
  }
  let usage: EngineUsage | undefined;
  if (chunk.usage !== undefined && chunk.usage !== null) {
    const raw = chunk.usage as { prompt_tokens?: unknown; completion_tokens?: unknown; prompt_tokens_details?: { cached_tokens?: unknown } | null };
    const promptTokens = toCount(raw.prompt_tokens);
    const completionTokens = toCount(raw.completion_tokens);
    if (promptTokens !== undefined && completionTokens !== undefined) {
      const cached = toCount(raw.prompt_tokens_details?.cached_tokens) ?? 0;
      usage = { promptTokens, completionTokens, cachedTokens: Math.min(cached, promptTokens) };
    }
  }
  return { text, ...(finishReason ? { finishReason } : {}), ...(usage ? { usage } : {}) };
}

export interface ChatStreamOptions {
  /** The call's signal: aborting it aborts the engine request at once. */
  signal: AbortSignal;
  /** Longest silence accepted from the engine (headers, first chunk, between chunks). */
  idleTimeoutMs: number;
  requestId?: string;
}

/**
 * Sends one streaming chat completion to `engine` and yields its chunks. The
 * HTTP request is aborted when `signal` fires, when the engine stays silent
 * for `idleTimeoutMs` while we wait for it, or when the consumer stops
 * iterating, so the engine frees the sequence right away.
 */
export async function* streamChatCompletion(engine: Engine, body: ChatCompletionRequest, options: ChatStreamOptions): AsyncGenerator<ChatStreamEvent> {
  yield* streamOverWire(engine, engine.wire ?? VLLM_WIRE, body, options);
}

/** How to talk to one kind of engine: the HTTP request to send, and how to read its event stream. */
export interface EngineWire {
  request(engine: Engine, body: ChatCompletionRequest): { url: string; headers: Record<string, string>; body: unknown };
  /** A reader for one stream (it may keep state across events): a chunk, 'done' at the end, or 'skip'. */
  reader(): (event: { event: string; data: string }) => ReturnType<typeof parseChatChunk> | 'done' | 'skip';
}

/** vLLM's (and OpenAI's) chat completions stream: `data:` JSON chunks, then `data: [DONE]`. */
export const VLLM_WIRE: EngineWire = {
  request: (engine, body) => ({ url: `${engine.baseUrl}/v1/chat/completions`, headers: {}, body }),
  reader: () => (event) => (event.data === '[DONE]' ? 'done' : event.event !== 'message' ? 'skip' : parseChatChunk(event.data)),
};

// Shared by every call: an Error (or the DOMException of a bare abort())
// captures a stack trace, and a stall can happen on any model call.
const STALLED = Object.freeze({ reason: 'engine stalled' });
/** What an engine may still send after `data: [DONE]` before the connection is dropped instead of read to its end. */
const MAX_AFTER_DONE_BYTES = 64 * 1024;

async function* streamOverWire(engine: Engine, wire: EngineWire, body: ChatCompletionRequest, options: ChatStreamOptions): AsyncGenerator<ChatStreamEvent> {
  const { signal, idleTimeoutMs } = options;
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(STALLED), idleTimeoutMs);
  };
  const disarm = () => clearTimeout(timer);
  const onAbort = () => controller.abort(signal.reason);
  if (signal.aborted) throw new CallAborted(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });

  const failure = (error: unknown, phase: 'connect' | 'stream'): Error => {
    if (signal.aborted) return new CallAborted(signal.reason);
    if (error instanceof EngineFailure || error instanceof CallAborted) return error;
    if (controller.signal.aborted && controller.signal.reason === STALLED) return new EngineFailure('stalled', `engine ${engine.id} sent nothing for ${idleTimeoutMs} ms`, { retryable: true });
    return phase === 'connect'
      ? new EngineFailure('connect', `cannot reach engine ${engine.id}: ${errorMessage(error)}`, { retryable: true })
      : new EngineFailure('stream', `engine ${engine.id} broke off the stream: ${errorMessage(error)}`, { retryable: true });
  };

  let response: EngineResponse | undefined;
  let ended = false;
  try {
    arm();
    try {
      const outgoing = wire.request(engine, body);
      response = await send(outgoing.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          ...(options.requestId ? { 'x-request-id': options.requestId } : {}),
          ...injectTraceContext(),
          ...outgoing.headers,
        },
        body: JSON.stringify(outgoing.body),
        signal: controller.signal,
      });
    } catch (error) {
      throw failure(error, 'connect');
    }

    if (!response.ok) {
      let text = '';
      try {
        text = await readBodyText(response, MAX_ERROR_BODY_BYTES);
      } catch (error) {
        throw failure(error, 'stream');
      }
      const message = engineErrorMessage(text);
      throw new EngineFailure('http', `engine ${engine.id} answered ${response.status}: ${message}`, {
        status: response.status,
        retryable: retryableStatus(response.status),
        engineMessage: message,
      });
    }
    disarm();
    yield { type: 'open' };

    const chunks = (response.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const next = async () => {
      arm();
      try {
        return await chunks.next();
      } catch (error) {
        throw failure(error, 'stream');
      } finally {
        disarm();
      }
    };
    const decoder = new TextDecoder('utf-8');
    const parser = new SseParser();
    const readEvent = wire.reader();
    let done = false;
    while (!done) {
      const read = await next();
      ended = read.done === true;
      let events;
      try {
        events = read.done ? [...parser.push(decoder.decode()), ...parser.end()] : parser.push(decoder.decode(read.value, { stream: true }));
      } catch (error) {
        throw new EngineFailure('protocol', `engine ${engine.id} sent an unreadable event stream: ${errorMessage(error)}`, { retryable: true });
      }
      for (const event of events) {
        const chunk = readEvent(event);
        if (chunk === 'done') {
          done = true;
          break;
        }
        if (chunk === 'skip') continue;
        yield { type: 'chunk', ...chunk };
      }
      if (read.done && !done) throw new EngineFailure('stream', `engine ${engine.id} closed the stream before [DONE]`, { retryable: true });
    }
    // An engine ends its response right after [DONE]: reading that end keeps
    // the connection for the next call. The call is complete either way.
    try {
      for (let trailing = 0; !ended && trailing <= MAX_AFTER_DONE_BYTES; ) {
        const read = await next();
        ended = read.done === true;
        if (!read.done) trailing += read.value.byteLength;
      }
    } catch {
      // A connection that fails after [DONE] is simply not reused.
    }
  } finally {
    disarm();
    signal.removeEventListener('abort', onAbort);
    // Early exit (consumer stopped, error, too much after [DONE]): closing the
    // connection makes the engine abort the request at once.
    if (response && !ended) response.body.destroy();
  }
}
