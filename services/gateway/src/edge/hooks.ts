import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ApiError, CONFIG, LOGGER, sendApiError, toApiError, type Logger } from '@ai-platform/platform';
import { Authenticator } from '../auth/authenticator';
import type { GatewayConfig } from '../config';
import { idempotencyHook } from '../idempotency/idempotency.hook';
import { IdempotencyStore } from '../idempotency/idempotency.store';
import { checkJsonBody } from './json-body';

const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'cross-origin-opener-policy': 'same-origin',
  'cache-control': 'no-store',
};

const CORS_ALLOWED_HEADERS = 'authorization, content-type, idempotency-key, x-request-id, x-conversation-id';
const CORS_EXPOSED_HEADERS = 'x-request-id, x-conversation-id, retry-after, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens, idempotent-replayed, x-vercel-ai-ui-message-stream';

function pathOf(request: FastifyRequest): string {
  return request.url.split('?')[0] ?? request.url;
}

/** CORS for configured origins only; answers preflights itself. Returns true when it replied. */
function cors(request: FastifyRequest, reply: FastifyReply, origins: Set<string>): boolean {
  const origin = request.headers.origin;
  const allowed = typeof origin === 'string' && (origins.has(origin) || origins.has('*'));
  if (allowed) {
    void reply.header('access-control-allow-origin', origin).header('vary', 'Origin').header('access-control-expose-headers', CORS_EXPOSED_HEADERS);
  }
  if (request.method === 'OPTIONS' && request.headers['access-control-request-method']) {
    if (allowed) {
      void reply.header('access-control-allow-methods', 'GET, POST, PATCH, DELETE, OPTIONS').header('access-control-allow-headers', CORS_ALLOWED_HEADERS).header('access-control-max-age', '600');
    }
    void reply.status(allowed ? 204 : 403).send();
    return true;
  }
  return false;
}

/**
 * The gateway's edge: security headers and CORS on every answer, then the
 * caller's credential on every /v1 and /api route (before the body is read),
 * then Idempotency-Key handling once the body is parsed.
 */
export function installEdgeHooks(fastify: FastifyInstance, app: NestFastifyApplication): void {
  const config = app.get<GatewayConfig>(CONFIG);
  const logger = app.get<Logger>(LOGGER);
  const authenticator = app.get(Authenticator);
  const idempotency = idempotencyHook(app.get(IdempotencyStore), logger);
  const origins = new Set(config.CORS_ORIGINS);

  fastify.addHook('onRequest', async (request, reply) => {
    void reply.headers(SECURITY_HEADERS);
    if (cors(request, reply, origins)) return reply;
    // A NUL in a path or query parameter can only arrive percent-encoded; no id or text field accepts one.
    if (request.url.includes('%00')) {
      sendApiError(reply, ApiError.badRequest('the URL contains the NUL character (%00), which no parameter accepts', null, 'invalid_character'));
      return reply;
    }
    const path = pathOf(request);
    // /v1/admin/* (billing's operator routes) carries the admin token, checked by its controller.
    if ((path.startsWith('/v1/') || path.startsWith('/api/')) && !path.startsWith('/v1/admin/')) {
      try {
        await authenticator.admit(request, path);
      } catch (error) {
        sendApiError(reply, toApiError(error, logger));
        return reply;
      }
    }
    return undefined;
  });

  // Errors Fastify answers itself (body parsing before Nest's filter) come in its own
  // {statusCode, code, error, message} shape; rewrite them into the public one.
  fastify.addHook('onSend', async (_request, reply, payload) => {
    if (reply.statusCode < 400 || typeof payload !== 'string' || !payload.startsWith('{"statusCode"')) return payload;
    try {
      const parsed = JSON.parse(payload) as { statusCode?: number; code?: string; message?: string };
      return JSON.stringify(toApiError(Object.assign(new Error(parsed.message), { statusCode: parsed.statusCode ?? reply.statusCode, code: parsed.code }), logger).toBody());
    } catch {
      return payload;
    }
  });

  fastify.addHook('preHandler', async (request, reply) => {
    try {
      checkJsonBody(request);
      await idempotency(request, reply);
    } catch (error) {
      sendApiError(reply, toApiError(error, logger));
      return reply;
    }
    return undefined;
  });
}

/** Socket-level problems (bad header bytes, headers too large) answered in the public error shape. */
export function clientErrorHandler(error: Error & { code?: string }, socket: import('node:net').Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const body = JSON.stringify({ error: { message: tooLarge ? 'request headers are too large' : status === 408 ? 'request timed out' : 'malformed HTTP request', type: 'invalid_request_error', code: tooLarge ? 'headers_too_large' : status === 408 ? 'request_timeout' : 'bad_request', param: null } });
  socket.end(`HTTP/1.1 ${status} ${tooLarge ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}
