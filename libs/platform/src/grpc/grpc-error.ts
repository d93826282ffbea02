import { status } from '@grpc/grpc-js';

/** A failure a handler reports with a specific gRPC status and a message for the caller. */
export class GrpcError extends Error {
  constructor(
    readonly code: status,
    message: string,
    /** Trailing metadata sent with the status (e.g. `retry-after` in seconds). */
    readonly trailers?: Readonly<Record<string, string>>,
  ) {
    super(message);
  }
}

export function isServiceError(error: unknown): error is Error & { code: number; details: string } {
  return typeof error === 'object' && error !== null && 'code' in error && typeof (error as { code: unknown }).code === 'number' && 'details' in error;
}

export { status as GrpcStatus };
