import { create, fromBinary, toBinary, type DescMethod } from '@bufbuild/protobuf';
import type { MethodDefinition } from '@grpc/grpc-js';
import type { AnyService } from './types';

/** Builds grpc-js method definitions whose codecs are protobuf-es schemas. */
export function methodDefinitions(service: AnyService): Array<{ method: DescMethod; definition: MethodDefinition<unknown, unknown> }> {
  return service.methods.map((method) => ({
    method,
    definition: {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
      responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      requestSerialize: (value: any) => Buffer.from(toBinary(method.input, create(method.input, value))),
      requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      responseSerialize: (value: any) => Buffer.from(toBinary(method.output, create(method.output, value))),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    },
  }));
}
