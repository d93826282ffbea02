import type { DescMessage, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { RequestContext } from '../lifecycle/request-context';

export type AnyService = GenService<GenServiceMethods>;
type MethodsOf<S> = S extends GenService<infer M> ? M : never;

/** What a handler knows about the call besides its request. */
export interface CallInfo {
  /** Aborted when the client cancels, the deadline passes or the server drains. */
  signal: AbortSignal;
  context: RequestContext;
  method: string;
}

type Handler<M> = M extends { methodKind: 'unary'; input: infer I extends DescMessage; output: infer O extends DescMessage }
  ? (request: MessageShape<I>, call: CallInfo) => Promise<MessageInitShape<O>>
  : M extends { methodKind: 'server_streaming'; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? (request: MessageShape<I>, call: CallInfo) => AsyncIterable<MessageInitShape<O>>
    : never;

/** The handlers a server provides for service `S`, one per rpc (lowerCamel names). */
export type ServiceImplementation<S> = { [K in keyof MethodsOf<S>]: Handler<MethodsOf<S>[K]> };

export interface CallOptions {
  signal?: AbortSignal;
  /** Relative deadline; the tighter of this and the inherited context deadline wins. */
  timeoutMs?: number;
  context?: RequestContext;
}

type ClientMethod<M> = M extends { methodKind: 'unary'; input: infer I extends DescMessage; output: infer O extends DescMessage }
  ? (request: MessageInitShape<I>, options?: CallOptions) => Promise<MessageShape<O>>
  : M extends { methodKind: 'server_streaming'; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? (request: MessageInitShape<I>, options?: CallOptions) => AsyncIterable<MessageShape<O>>
    : never;

export type ServiceClient<S> = { [K in keyof MethodsOf<S>]: ClientMethod<MethodsOf<S>[K]> } & { close(): void };
