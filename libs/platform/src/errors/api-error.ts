import { status as GrpcStatus } from '@grpc/grpc-js';

/** OpenAI's error `type` vocabulary, used on every public error. */
export type ApiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'conflict_error'
  | 'rate_limit_error'
  | 'insufficient_quota'
  | 'server_error'
  | 'service_unavailable';

export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; code: string | null; param: string | null };
}

/** A failure with a public meaning: it renders as `{"error":{...}}` with its status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: ApiErrorType,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toBody(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, code: this.code, param: this.param } };
  }

  static badRequest(message: string, param: string | null = null, code = 'invalid_request') {
    return new ApiError(400, 'invalid_request_error', message, code, param);
  }
  static unauthorized(message: string, code = 'invalid_api_key') {
    return new ApiError(401, 'authentication_error', message, code);
  }
  static notFound(message: string, code = 'not_found', param: string | null = null) {
    // OpenAI reports missing resources as invalid requests with status 404.
    return new ApiError(404, 'invalid_request_error', message, code, param);
  }
  static unavailable(message: string, retryAfterSeconds?: number) {
    return new ApiError(503, 'service_unavailable', message, 'service_unavailable', null,
      retryAfterSeconds ? { 'retry-after': String(retryAfterSeconds) } : {});
  }
}

/** Postgres SQLSTATEs for text it cannot encode: 22021 character_not_in_repertoire (U+0000), 22P05 untranslatable_character. */
const UNSTORABLE_TEXT_SQLSTATES = new Set(['22021', '22P05']);

/**
 * True for a database error caused by the caller's text (a U+0000 that got past
 * validation): a bad request, not a fault of the service.
 */
export function isUnstorableTextError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && UNSTORABLE_TEXT_SQLSTATES.has((error as { code?: unknown }).code as string);
}

export const UNSTORABLE_TEXT_MESSAGE = 'text contains a character that cannot be stored (such as U+0000)';

/** How a gRPC status from a downstream service surfaces on the public API. */
export function apiErrorFromGrpc(code: number, details: string): ApiError {
  switch (code) {
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.OUT_OF_RANGE:
      return new ApiError(400, 'invalid_request_error', details, 'invalid_request');
    case GrpcStatus.NOT_FOUND:
      return ApiError.notFound(details);
    case GrpcStatus.FAILED_PRECONDITION:
      return new ApiError(402, 'insufficient_quota', details, 'insufficient_quota');
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return new ApiError(429, 'rate_limit_error', details, 'rate_limit_exceeded', null, { 'retry-after': '1' });
    case GrpcStatus.PERMISSION_DENIED:
      return new ApiError(403, 'permission_error', details, 'permission_denied');
    case GrpcStatus.UNAUTHENTICATED:
      return new ApiError(401, 'authentication_error', details, 'unauthenticated');
    case GrpcStatus.ALREADY_EXISTS:
    case GrpcStatus.ABORTED:
      return new ApiError(409, 'conflict_error', details, 'conflict');
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new ApiError(504, 'server_error', 'upstream deadline exceeded', 'deadline_exceeded');
    case GrpcStatus.UNAVAILABLE:
      return ApiError.unavailable(details || 'upstream unavailable', 1);
    case GrpcStatus.CANCELLED:
      return new ApiError(499 as number, 'server_error', 'request cancelled', 'cancelled');
    default:
      return new ApiError(500, 'server_error', 'internal error', 'internal_error');
  }
}
