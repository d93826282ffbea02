import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, type Logger } from '@ai-platform/platform';
import { IdempotencyStore, type StoredResponse } from './idempotency.store';

const KEY = /^[\x21-\x7e]{1,255}$/;
const UNSTORED_HEADERS = new Set(['connection', 'transfer-encoding', 'keep-alive', 'date', 'content-length']);

function fingerprint(request: FastifyRequest): string {
  const path = request.url.split('?')[0];
  return createHash('sha256').update(`${request.method} ${path}\n${JSON.stringify(request.body ?? null)}`).digest('base64url');
}

/** Records everything written to the raw response: status, headers and body bytes. */
function record(raw: ServerResponse): () => StoredResponse {
  const chunks: Buffer[] = [];
  let headerArgs: Record<string, string> = {};
  const writeHead = raw.writeHead.bind(raw) as (...args: unknown[]) => ServerResponse;
  const write = raw.write.bind(raw) as (...args: unknown[]) => boolean;
  const end = raw.end.bind(raw) as (...args: unknown[]) => ServerResponse;
  const keep = (chunk: unknown) => {
    if (typeof chunk === 'string') chunks.push(Buffer.from(chunk));
    else if (chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
  };
  (raw as { writeHead: unknown }).writeHead = (...args: unknown[]) => {
    const headers = args.find((arg, index) => index > 0 && typeof arg === 'object' && arg !== null && !Array.isArray(arg));
    if (headers) headerArgs = { ...headerArgs, ...(headers as Record<string, string>) };
    return writeHead(...args);
  };
  (raw as { write: unknown }).write = (chunk: unknown, ...rest: unknown[]) => {
    keep(chunk);
    return write(chunk, ...rest);
  };
  (raw as { end: unknown }).end = (chunk?: unknown, ...rest: unknown[]) => {
    if (typeof chunk !== 'function') keep(chunk);
    return end(chunk, ...rest);
  };
  return () => {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries({ ...raw.getHeaders(), ...headerArgs })) {
      if (value !== undefined && !UNSTORED_HEADERS.has(name.toLowerCase())) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
    }
    return { status: raw.statusCode, headers, body: Buffer.concat(chunks) };
  };
}

/**
 * `Idempotency-Key` on POSTs: a repeat with the same body replays the stored
 * response (streamed or not) without running, and so without charging, again;
 * a different body gets 422; a repeat while the first still runs gets 409.
 * Only 2xx answers are kept; after an error the key is freed for a retry.
 * If Redis cannot be asked, the request is refused (503) rather than risk a
 * second charge.
 */
export function idempotencyHook(store: IdempotencyStore, logger: Logger) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (request.method !== 'POST' || !request.principal) return;
    const header = request.headers['idempotency-key'];
    if (header === undefined) return;
    if (typeof header !== 'string' || !KEY.test(header)) {
      throw ApiError.badRequest('Idempotency-Key must be 1 to 255 printable ASCII characters.', 'Idempotency-Key', 'invalid_idempotency_key');
    }
    const key = IdempotencyStore.redisKey(request.principal.tenantId, header);
    let begun;
    try {
      begun = await store.begin(key, fingerprint(request));
    } catch (error) {
      logger.warn({ err: error }, 'idempotency store unavailable');
      throw ApiError.unavailable('Idempotency keys cannot be checked right now; retry shortly.', 1);
    }
    if (begun.kind === 'mismatch') {
      throw new ApiError(422, 'invalid_request_error', 'This Idempotency-Key was already used with a different request body.', 'idempotency_key_reused', 'Idempotency-Key');
    }
    if (begun.kind === 'in_flight') {
      throw new ApiError(409, 'conflict_error', 'A request with this Idempotency-Key is still being processed.', 'idempotency_in_flight', 'Idempotency-Key', { 'retry-after': '1' });
    }
    if (begun.kind === 'replay') {
      const { status, headers, body } = begun.response;
      reply.hijack();
      reply.raw.writeHead(status, { ...headers, 'idempotent-replayed': 'true', 'content-length': String(body.length) });
      reply.raw.end(body);
      return;
    }
    const snapshot = record(reply.raw);
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      const response = snapshot();
      const work = response.status >= 200 && response.status < 300 ? store.complete(key, response) : store.abandon(key);
      work.catch((error) => logger.warn({ err: error }, 'could not store idempotent response; the key frees when its lock expires'));
    };
    reply.raw.once('finish', settle);
    reply.raw.once('close', settle);
  };
}
