import {
  Metadata,
  Server,
  ServerCredentials,
  status,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  type UntypedHandleCall,
} from '@grpc/grpc-js';
import type { DescMethod } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import { DrainTracker } from '../lifecycle/drain';
import { runWithContext } from '../lifecycle/request-context';
import { grpcServerDuration, grpcServerHandled } from '../metrics/metrics';
import { extractTraceContext, SpanKind, withSpan } from '../telemetry/telemetry';
import { methodDefinitions } from './codec';
import { GrpcError, isServiceError } from './grpc-error';
import { isUnstorableTextError, UNSTORABLE_TEXT_MESSAGE } from '../errors/api-error';
import { metadataCarrier, metadataToContext } from './metadata';

/**
 * Codes of a failed downstream call that a handler relays as they are. Others
 * (UNAUTHENTICATED, PERMISSION_DENIED, INTERNAL, UNKNOWN...) describe this
 * service's own dealings with the downstream one and stay INTERNAL.
 */
const RELAYED_CODES: ReadonlySet<number> = new Set([
  status.INVALID_ARGUMENT, status.NOT_FOUND, status.FAILED_PRECONDITION, status.OUT_OF_RANGE,
  status.RESOURCE_EXHAUSTED, status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.ABORTED,
]);
import type { AnyService, CallInfo, ServiceImplementation } from './types';

const statusName = (code: number) => status[code] ?? String(code);

/** Waits for the stream to accept more data, or for the call to be aborted, whichever comes first. */
function writable(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    call.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * A grpc-js server whose handlers are plain async functions and async
 * generators. It restores the caller's context and trace, turns cancellation
 * and deadlines into an AbortSignal, and lets shutdown drain open streams.
 */
export class GrpcServer {
  // Channelz is off: nothing here serves it, and with it on, billing's Reserve benchmark
  // promoted about twice the bytes per call out of the young generation (allocation
  // sampling), which lengthens scavenge pauses and brings old-generation GCs sooner.
  private readonly server = new Server({ 'grpc.max_receive_message_length': 8 * 1024 * 1024, 'grpc.enable_channelz': 0 });
  private boundPort?: number;

  constructor(private readonly logger: Logger, private readonly drain: DrainTracker) {}

  addService<S extends AnyService>(service: S, implementation: ServiceImplementation<S>): void {
    const handlers: Record<string, UntypedHandleCall> = {};
    const definition: Record<string, unknown> = {};
    for (const { method, definition: methodDefinition } of methodDefinitions(service)) {
      const handler = (implementation as Record<string, unknown>)[method.localName];
      if (typeof handler !== 'function') throw new Error(`${service.typeName}.${method.name} has no handler`);
      definition[method.name] = methodDefinition;
      handlers[method.name] = methodDefinition.responseStream
        ? this.wrapServerStream(method, handler.bind(implementation))
        : this.wrapUnary(method, handler.bind(implementation));
    }
    this.server.addService(definition as never, handlers);
  }

  async listen(host: string, port: number): Promise<number> {
    this.boundPort = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    return this.boundPort;
  }

  get port(): number | undefined {
    return this.boundPort;
  }

  /** Stops accepting calls; in-flight ones finish or are ended by the drain tracker. */
  async shutdown(timeoutMs: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, timeoutMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private callInfo(method: DescMethod, call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>) {
    const rawDeadline = call.getDeadline();
    const deadline = rawDeadline instanceof Date ? rawDeadline.getTime() : Number.isFinite(rawDeadline) ? Number(rawDeadline) : undefined;
    const context = metadataToContext(call.metadata, deadline);
    const controller = new AbortController();
    // grpc-js also reports 'cancelled' when the stream closes after a call that already finished;
    // aborting then would only build an error (a stack trace) and wake every listener of the signal, per call.
    let finished = false;
    call.on('cancelled', () => {
      if (!finished) controller.abort(new GrpcError(status.CANCELLED, 'cancelled by client'));
    });
    let timer: NodeJS.Timeout | undefined;
    if (deadline) {
      timer = setTimeout(() => controller.abort(new GrpcError(status.DEADLINE_EXCEEDED, 'deadline exceeded')), Math.max(0, deadline - Date.now()));
    }
    const info: CallInfo = { signal: controller.signal, context, method: `${method.parent.typeName}/${method.name}` };
    const clear = () => {
      finished = true;
      clearTimeout(timer);
    };
    return { info, controller, clear, parent: extractTraceContext(metadataCarrier(call.metadata)) };
  }

  private toStatus(error: unknown, method: string): { code: number; details: string; metadata?: Metadata } {
    if (error instanceof GrpcError) {
      // grpc-js percent-encodes details with encodeURI, which throws on a lone
      // UTF-16 surrogate (say, a hostile id echoed in the message) and would
      // take the whole process down.
      const details = error.message.toWellFormed();
      if (!error.trailers) return { code: error.code, details };
      const metadata = new Metadata();
      for (const [key, value] of Object.entries(error.trailers)) metadata.set(key, value);
      return { code: error.code, details, metadata };
    }
    if (isServiceError(error) && RELAYED_CODES.has(error.code)) {
      // A downstream call this handler made failed for a reason the caller can act on
      // (no engine now, shed with a retry hint, bad input, not found): hand it on
      // instead of hiding it behind INTERNAL, with its retry hint.
      this.logger.warn({ err: error, method, grpc_code: status[error.code] }, 'downstream call failed; relaying its status');
      const retryAfter = (error as { metadata?: Metadata }).metadata?.get?.('retry-after')[0];
      if (retryAfter === undefined) return { code: error.code, details: error.details.toWellFormed() };
      const metadata = new Metadata();
      metadata.set('retry-after', String(retryAfter));
      return { code: error.code, details: error.details.toWellFormed(), metadata };
    }
    if (isUnstorableTextError(error)) {
      // Callers validate text first; this keeps a gap there a 4xx, not a 500.
      this.logger.warn({ err: error, method }, 'grpc request carried text the database cannot store');
      return { code: status.INVALID_ARGUMENT, details: UNSTORABLE_TEXT_MESSAGE };
    }
    this.logger.error({ err: error, method }, 'grpc handler failed');
    return { code: status.INTERNAL, details: 'internal error' };
  }

  private wrapUnary(method: DescMethod, handler: (request: unknown, call: CallInfo) => Promise<unknown>) {
    return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      const { info, clear, parent } = this.callInfo(method, call);
      const stopTimer = grpcServerDuration.startTimer({ method: info.method });
      void runWithContext(info.context, () =>
        withSpan(info.method, { kind: SpanKind.SERVER, parent }, async () => {
          let code = 'OK';
          try {
            const response = await handler(call.request, info);
            callback(null, response);
          } catch (error) {
            const failure = this.toStatus(error, info.method);
            code = statusName(failure.code);
            callback(failure);
          } finally {
            grpcServerHandled.inc({ method: info.method, code });
            clear();
            this.logger.debug({ grpc_method: info.method, grpc_code: code, duration_ms: Math.round(stopTimer() * 1000) }, 'grpc call completed');
          }
        }),
      );
    };
  }

  private wrapServerStream(method: DescMethod, handler: (request: unknown, call: CallInfo) => AsyncIterable<unknown>) {
    return (call: ServerWritableStream<unknown, unknown>) => {
      const { info, controller, clear, parent } = this.callInfo(method, call);
      const stopTimer = grpcServerDuration.startTimer({ method: info.method });
      const untrack = this.drain.track(() => controller.abort(new GrpcError(status.UNAVAILABLE, 'server is shutting down')));
      void runWithContext(info.context, () =>
        withSpan(info.method, { kind: SpanKind.SERVER, parent }, async () => {
          let code = 'OK';
          try {
            for await (const message of handler(call.request, info)) {
              if (controller.signal.aborted) break;
              if (!call.write(message)) await writable(call, controller.signal);
            }
            if (controller.signal.aborted) throw controller.signal.reason;
            call.end();
          } catch (error) {
            const failure = this.toStatus(error, info.method);
            code = statusName(failure.code);
            if (!call.cancelled) call.emit('error', failure);
          } finally {
            grpcServerHandled.inc({ method: info.method, code });
            clear();
            this.logger.info({ grpc_method: info.method, grpc_code: code, duration_ms: Math.round(stopTimer() * 1000) }, 'grpc stream completed');
            untrack();
          }
        }),
      );
    };
  }
}
