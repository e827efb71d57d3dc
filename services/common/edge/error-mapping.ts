/**
 * Domain errors in each surface's terms, decided in one place: a ValidationError is 422 on
 * REST and INVALID_ARGUMENT on Connect, an AuthError 401/403 and UNAUTHENTICATED /
 * PERMISSION_DENIED, an HttpError its status and the matching code. Handlers throw the
 * domain error; the REST router and the Connect interceptor translate it at the edge.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { toConnectError } from "../auth/connect-auth.js";
import { AuthError } from "../auth/tokens.js";
import { HttpError } from "../http/http-error.js";
import { ValidationError } from "../validation-error.js";

const CODE_OF_STATUS: Readonly<Record<number, Code>> = {
  400: Code.InvalidArgument,
  401: Code.Unauthenticated,
  403: Code.PermissionDenied,
  404: Code.NotFound,
  409: Code.FailedPrecondition,
  413: Code.ResourceExhausted,
  415: Code.InvalidArgument,
  422: Code.InvalidArgument,
  429: Code.ResourceExhausted,
  503: Code.Unavailable,
  507: Code.ResourceExhausted,
  504: Code.DeadlineExceeded,
};

/** The HTTP status a failed request answers with. */
export function httpStatusOf(error: unknown): number {
  if (error instanceof AuthError || error instanceof HttpError) return error.status;
  if (error instanceof ValidationError) return 422;
  return 500;
}

/** The ConnectError for a domain error; anything else as it is (connect-es makes it INTERNAL). */
export function connectErrorOf(error: unknown): unknown {
  if (error instanceof ConnectError) return error;
  if (error instanceof ValidationError) return new ConnectError(error.message, Code.InvalidArgument, undefined, undefined, error);
  if (error instanceof AuthError) return toConnectError(error);
  if (error instanceof HttpError) return new ConnectError(error.message, CODE_OF_STATUS[error.status] ?? (error.status < 500 ? Code.FailedPrecondition : Code.Internal), undefined, undefined, error);
  return error;
}

/** Translates what a handler throws, for the services it is registered for (all when none named). */
export function errorMappingInterceptor(services?: readonly string[]): Interceptor {
  return (next) => async (request) => {
    if (services !== undefined && !services.includes(request.service.typeName)) return next(request);
    try {
      return await next(request);
    } catch (error) {
      throw connectErrorOf(error);
    }
  };
}
