/**
 * A grpc-js service definition derived from a protobuf-es service descriptor, so the
 * client-stream server uses the same generated contract as everything else.
 * Responses may be given pre-serialized (a Uint8Array): fan-out encodes an event once
 * and writes the same bytes to every stream.
 */
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function methodDefinition<I extends DescMessage, O extends DescMessage>(
  path: string,
  input: I,
  output: O,
  requestStream: boolean,
  responseStream: boolean,
): MethodDefinition<MessageShape<I>, MessageShape<O> | Uint8Array> {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: (message) => toBuffer(toBinary(input, message)),
    requestDeserialize: (bytes) => fromBinary(input, bytes),
    responseSerialize: (message) => (message instanceof Uint8Array ? toBuffer(message) : toBuffer(toBinary(output, message))),
    responseDeserialize: (bytes) => fromBinary(output, bytes),
  };
}

export function grpcServiceDefinition<T extends GenServiceMethods>(service: GenService<T>): ServiceDefinition {
  const definition: Record<string, MethodDefinition<object, object>> = {};
  for (const method of service.methods) {
    const path = `/${service.typeName}/${method.name}`;
    const requestStream = method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
    const responseStream = method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
    definition[method.localName] = methodDefinition(path, method.input, method.output, requestStream, responseStream) as MethodDefinition<object, object>;
  }
  return definition;
}
