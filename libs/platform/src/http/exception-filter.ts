import { ArgumentsHost, Catch, HttpException, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { ApiError, isUnstorableTextError, UNSTORABLE_TEXT_MESSAGE, type ApiErrorType } from '../errors/api-error';

const typeForStatus = (status: number): ApiErrorType =>
  status === 401 ? 'authentication_error'
  : status === 403 ? 'permission_error'
  : status === 409 ? 'conflict_error'
  : status === 429 ? 'rate_limit_error'
  : status === 503 ? 'service_unavailable'
  : status >= 500 ? 'server_error'
  : 'invalid_request_error';

/** Turns anything thrown into the platform's public error shape. */
export function toApiError(error: unknown, logger: Logger): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof HttpException) {
    const status = error.getStatus();
    const response = error.getResponse();
    const message = typeof response === 'string' ? response : ((response as { message?: unknown }).message ?? error.message);
    return new ApiError(status, typeForStatus(status), Array.isArray(message) ? message.join('; ') : String(message), status === 404 ? 'not_found' : null);
  }
  const fastifyError = error as { statusCode?: number; code?: string; message?: string };
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    const status = fastifyError.statusCode;
    const message =
      fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'request body is too large'
      : fastifyError.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'unsupported content type; send application/json'
      : fastifyError.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'request body is empty'
      : status === 400 ? `malformed request body: ${fastifyError.message ?? 'invalid JSON'}`
      : (fastifyError.message ?? 'bad request');
    return new ApiError(status, typeForStatus(status), message, fastifyError.code?.toLowerCase() ?? null);
  }
  if (isUnstorableTextError(error)) {
    logger.warn({ err: error }, 'request carried text the database cannot store');
    return ApiError.badRequest(UNSTORABLE_TEXT_MESSAGE, null, 'invalid_character');
  }
  logger.error({ err: error }, 'unhandled error');
  return new ApiError(500, 'server_error', 'internal error', 'internal_error');
}

export function sendApiError(reply: FastifyReply, error: ApiError): void {
  if (reply.sent || reply.raw.headersSent) {
    if (!reply.raw.writableEnded) reply.raw.end();
    return;
  }
  void reply.status(error.status).headers(error.headers).header('content-type', 'application/json').send(error.toBody());
}

@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    sendApiError(host.switchToHttp().getResponse<FastifyReply>(), toApiError(exception, this.logger));
  }
}
