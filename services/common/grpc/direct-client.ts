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
import { type CallOptions, type Client, Code, ConnectError, createContextValues, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";

type AnyImpl = (input: unknown, context: HandlerContext) => unknown;

/** Why a call's context signal aborts once the call is over: one shared reason, no DOMException per call. */
const CALL_ENDED = new ConnectError("the call ended", Code.Canceled);

interface CallContext {
  context: HandlerContext;
  /** The call is over: its signal aborts (streams and waits in the implementation end), timers and listeners go. */
  end(): void;
}

/**
 * The handler context of one call, built by hand: Connect's createHandlerContext links two
 * AbortControllers and makes three Headers objects per call (a DOMException per call when
 * aborted without a reason), a measurable share of a batched append's cost.
 */
function contextFor(service: DescService, method: DescMethod, options: CallOptions | undefined): CallContext {
  const controller = new AbortController();
  const caller = options?.signal;
  const onCallerAbort = (): void => controller.abort(ConnectError.from(caller?.reason, Code.Canceled));
  if (caller?.aborted === true) onCallerAbort();
  else caller?.addEventListener("abort", onCallerAbort, { once: true });
  const deadline = options?.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
  const timer = deadline === undefined ? undefined : setTimeout(() => controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), options?.timeoutMs);
  let requestHeader: Headers | undefined;
  let responseHeader: Headers | undefined;
  let responseTrailer: Headers | undefined;
  const values = options?.contextValues ?? createContextValues();
  const context: HandlerContext = {
    service,
    method,
    protocolName: "in-process",
    requestMethod: "POST",
    url: `in-process:///${service.typeName}/${method.name}`,
    signal: controller.signal,
    timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
    get requestHeader() {
      // CallOptions' header type is the fetch API's HeadersInit, which the linter's program does not resolve.
      // eslint-disable-next-line @typescript-eslint/no-unsafe-argument
      return (requestHeader ??= new Headers(options?.headers));
    },
    get responseHeader() {
      return (responseHeader ??= new Headers());
    },
    get responseTrailer() {
      return (responseTrailer ??= new Headers());
    },
    values,
  };
  return {
    context,
    end() {
      clearTimeout(timer);
      caller?.removeEventListener("abort", onCallerAbort);
      if (!controller.signal.aborted) controller.abort(CALL_ENDED);
    },
  };
}

function message<Desc extends DescMessage>(schema: Desc, value: unknown): MessageShape<Desc> {
  return isMessage(value, schema) ? value : create(schema, value as Parameters<typeof create<Desc>>[1]);
}

/** A thrown error as a client of a remote service sees it: a ConnectError; a cancelled or timed-out call's own reason. */
function asConnectError(error: unknown, signal: AbortSignal): ConnectError {
  if (signal.aborted && signal.reason instanceof ConnectError) return signal.reason;
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
          const call = contextFor(service, method, options);
          try {
            call.context.signal.throwIfAborted();
            return message(method.output, await handler.call(impl, message(method.input, request), call.context));
          } catch (error) {
            throw asConnectError(error, call.context.signal);
          } finally {
            call.end();
          }
        };
        break;
      case "server_streaming":
        client[method.localName] = async function* (request: unknown, options?: CallOptions) {
          const call = contextFor(service, method, options);
          try {
            call.context.signal.throwIfAborted();
            for await (const response of handler.call(impl, message(method.input, request), call.context) as AsyncIterable<unknown>) {
              yield message(method.output, response);
            }
          } catch (error) {
            throw asConnectError(error, call.context.signal);
          } finally {
            // The caller stopped reading (or the call is over): the implementation's stream ends with it.
            call.end();
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
