import { Client, credentials, type ClientReadableStream, type Metadata } from '@grpc/grpc-js';
import { currentContext, type RequestContext } from '../lifecycle/request-context';
import { methodDefinitions } from './codec';
import { contextToMetadata } from './metadata';
import type { AnyService, CallOptions, ServiceClient } from './types';

export interface ClientOptions {
  /** Deadline applied to calls that inherit none. */
  defaultTimeoutMs: number;
}

function deadlineFor(options: CallOptions | undefined, context: RequestContext, fallbackMs: number): Date {
  const relative = Date.now() + (options?.timeoutMs ?? fallbackMs);
  return new Date(context.deadline ? Math.min(context.deadline, relative) : relative);
}

/**
 * A typed client for `service`. Every call sends the current request context
 * and trace as metadata and carries a deadline; an AbortSignal cancels it.
 */
export function createGrpcClient<S extends AnyService>(service: S, address: string, options: ClientOptions): ServiceClient<S> {
  const client = new Client(address, credentials.createInsecure(), {
    'grpc.keepalive_time_ms': 30_000,
    'grpc.max_receive_message_length': 8 * 1024 * 1024,
    'grpc.enable_channelz': 0, // unused, and it costs GC time per call (see server.ts)
  });
  const methods: Record<string, unknown> = { close: () => client.close() };

  for (const { method, definition } of methodDefinitions(service)) {
    const prepare = (callOptions?: CallOptions): { metadata: Metadata; deadline: Date } => {
      const context = { ...currentContext(), ...callOptions?.context };
      return { metadata: contextToMetadata(context), deadline: deadlineFor(callOptions, context, options.defaultTimeoutMs) };
    };

    if (definition.responseStream) {
      methods[method.localName] = (request: unknown, callOptions?: CallOptions) => {
        const { metadata, deadline } = prepare(callOptions);
        const call: ClientReadableStream<unknown> = client.makeServerStreamRequest(
          definition.path, definition.requestSerialize, definition.responseDeserialize, request, metadata, { deadline },
        );
        const onAbort = () => call.cancel();
        if (callOptions?.signal?.aborted) call.cancel();
        callOptions?.signal?.addEventListener('abort', onAbort, { once: true });
        call.on('close', () => callOptions?.signal?.removeEventListener('abort', onAbort));
        // Ending iteration early (break/return) cancels the call so the server stops work.
        return (async function* () {
          try {
            for await (const message of call) yield message;
          } finally {
            call.cancel();
            callOptions?.signal?.removeEventListener('abort', onAbort);
          }
        })();
      };
    } else {
      methods[method.localName] = (request: unknown, callOptions?: CallOptions) => {
        const { metadata, deadline } = prepare(callOptions);
        return new Promise((resolve, reject) => {
          const call = client.makeUnaryRequest(
            definition.path, definition.requestSerialize, definition.responseDeserialize, request, metadata, { deadline },
            (error, response) => (error ? reject(error) : resolve(response)),
          );
          callOptions?.signal?.addEventListener('abort', () => call.cancel(), { once: true });
        });
      };
    }
  }
  return methods as ServiceClient<S>;
}
