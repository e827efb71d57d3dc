/**
 * A client of a service implemented in the same process, calling the implementation
 * directly: the same contract (request and response messages, ConnectErrors with their
 * codes, the handler context's signal, deadline and header), none of the protocol. The
 * embedded server wires its services through these. Connect's router transport encodes
 * every message, frames it into an in-memory HTTP exchange and decodes it again, and for a
 * stream adds several async-iterable layers per message: measured on the hot path of every
 * update (the batched log append, the distributor's log subscription), it was a third of
 * an idle update's time between the REST handler and fan-out.
 *
 * Messages are passed by reference, not copied: a service must not change a message once
 * it handed it over, or one it received (none does: the log keeps the events it is given,
 * fan-out copies an event before adding to it).
 */
import { create, type DescMessage, type DescMethod, type DescService, isMessage, type MessageShape } from "@bufbuild/protobuf";
import { type CallOptions, type Client, Code, ConnectError, createHandlerContext, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";

type AnyImpl = (input: unknown, context: HandlerContext) => unknown;

function contextFor(service: DescService, method: DescMethod, options: CallOptions | undefined) {
  return createHandlerContext({
    service,
    method,
    protocolName: "in-process",
    requestMethod: "POST",
    url: `in-process:///${service.typeName}/${method.name}`,
    ...(options?.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options?.signal === undefined ? {} : { requestSignal: options.signal }),
    // CallOptions' header type is the fetch API's HeadersInit, which the linter's program does not resolve.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-assignment
    ...(options?.headers === undefined ? {} : { requestHeader: options.headers }),
    ...(options?.contextValues === undefined ? {} : { contextValues: options.contextValues }),
  });
}

function message<Desc extends DescMessage>(schema: Desc, value: unknown): MessageShape<Desc> {
  return isMessage(value, schema) ? value : create(schema, value as Parameters<typeof create<Desc>>[1]);
}

/** A thrown error as a client of a remote service sees it: a ConnectError, with the call's own reason when it was cancelled. */
function asConnectError(error: unknown, signal: AbortSignal | undefined): ConnectError {
  if (signal?.aborted === true) return ConnectError.from(signal.reason, Code.Canceled);
  return ConnectError.from(error, Code.Internal);
}

export function directClient<T extends DescService>(service: T, impl: ServiceImpl<T>): Client<T> {
  const client: Record<string, unknown> = {};
  const handlers = impl as unknown as Record<string, AnyImpl>;
  for (const method of service.methods) {
    const handler = handlers[method.localName];
    if (handler === undefined) throw new Error(`${service.typeName}: no implementation of ${method.name}`);
    switch (method.methodKind) {
      case "unary":
        client[method.localName] = async (request: unknown, options?: CallOptions) => {
          const context = contextFor(service, method, options);
          try {
            context.signal.throwIfAborted();
            return message(method.output, await handler.call(impl, message(method.input, request), context));
          } catch (error) {
            throw asConnectError(error, options?.signal);
          } finally {
            context.abort();
          }
        };
        break;
      case "server_streaming":
        client[method.localName] = async function* (request: unknown, options?: CallOptions) {
          const context = contextFor(service, method, options);
          try {
            context.signal.throwIfAborted();
            for await (const response of handler.call(impl, message(method.input, request), context) as AsyncIterable<unknown>) {
              yield message(method.output, response);
            }
          } catch (error) {
            throw asConnectError(error, options?.signal);
          } finally {
            // The caller stopped reading (or the call is over): the implementation's stream ends with it.
            context.abort();
          }
        };
        break;
      default:
        client[method.localName] = () => {
          throw new ConnectError(`${service.typeName}/${method.name}: ${method.methodKind} calls are not served in process`, Code.Unimplemented);
        };
    }
  }
  return client as Client<T>;
}
