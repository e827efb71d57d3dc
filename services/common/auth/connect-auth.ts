/**
 * Authentication for Connect services, as an interceptor: each method names the peer
 * types it accepts; the caller's principal is left in the context for handlers that check
 * more (topics, scopes). A method without a rule is refused: no surface is open by accident.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Security } from "./security.js";
import { PRINCIPAL } from "./security.js";
import { AuthError, type PeerType } from "./tokens.js";

/** "opal.mesh.v1.TriggerService/PublishDataUpdate" → the peer types it accepts. */
export type MethodRules = Readonly<Record<string, readonly PeerType[]>>;

export function toConnectError(error: AuthError): ConnectError {
  return new ConnectError(error.message, error.status === 401 ? Code.Unauthenticated : Code.PermissionDenied);
}

export function authInterceptor(security: Security, rules: MethodRules): Interceptor {
  return (next) => async (request) => {
    const path = `${request.service.typeName}/${request.method.name}`;
    const allowed = rules[path];
    if (allowed === undefined) throw new ConnectError(`${path} is not open to callers`, Code.PermissionDenied);
    try {
      const principal = await (await security.authenticator()).authenticate(request.header.get("authorization") ?? undefined, allowed);
      request.contextValues.set(PRINCIPAL, principal);
    } catch (error) {
      if (error instanceof AuthError) throw toConnectError(error);
      throw error;
    }
    return next(request);
  };
}
