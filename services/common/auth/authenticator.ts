/**
 * Who is calling, and may they: one place every surface asks (Connect interceptor, REST
 * routes, the client stream, the client's own API). Without keys the server runs in dev
 * mode: everyone is allowed, and the server says so loudly.
 */
import { timingSafeEqual, createHash } from "node:crypto";
import { topicCovers } from "../topics.js";
import { AuthError, type PeerType, type Principal, type TokenVerifier } from "./tokens.js";

/** Who callers are in dev mode: anything goes. */
export const DEV_PRINCIPAL: Principal = { subject: "dev-mode", peerType: "service", permittedTopics: undefined, allowedScopes: undefined, claims: {} };

export function bearer(authorization: string | string[] | undefined): string | undefined {
  const value = Array.isArray(authorization) ? authorization[0] : authorization;
  const match = /^Bearer\s+(.+)$/i.exec(value?.trim() ?? "");
  return match?.[1];
}

function sameSecret(a: string, b: string): boolean {
  // Hash both so the comparison takes the same time whatever the lengths.
  return timingSafeEqual(createHash("sha256").update(a).digest(), createHash("sha256").update(b).digest());
}

export class Authenticator {
  constructor(
    private readonly verifier: TokenVerifier | undefined,
    private readonly masterToken: string | undefined,
  ) {}

  get devMode(): boolean {
    return this.verifier === undefined;
  }

  /** The caller, if its token is valid and its peer type one of `allowed`. */
  async authenticate(authorization: string | string[] | undefined, allowed: readonly PeerType[]): Promise<Principal> {
    if (this.verifier === undefined) return DEV_PRINCIPAL;
    const token = bearer(authorization);
    if (token === undefined) throw new AuthError("a bearer token is required (Authorization: Bearer <token>)", 401);
    const principal = await this.verifier.verify(token);
    if (!allowed.includes(principal.peerType)) {
      throw new AuthError(`a ${principal.peerType} token may not do this (needs ${allowed.join(" or ")})`, 403);
    }
    return principal;
  }

  /** OPAL_AUTH_MASTER_TOKEN, for issuing tokens. */
  checkMaster(authorization: string | string[] | undefined): void {
    if (this.masterToken === undefined) throw new AuthError("issuing tokens needs OPAL_AUTH_MASTER_TOKEN to be set on the server", 403);
    const token = bearer(authorization);
    if (token === undefined || !sameSecret(token, this.masterToken)) throw new AuthError("the master token is required", 401);
  }

  /** Every topic must lie under one of the caller's permitted_topics. */
  authorizeTopics(principal: Principal, topics: readonly string[]): void {
    const permitted = principal.permittedTopics;
    if (this.devMode || permitted === undefined) return;
    const denied = topics.filter((topic) => !permitted.some((allowed) => topicCovers(allowed, topic)));
    if (denied.length > 0) throw new AuthError(`not permitted on topic(s) ${denied.join(", ")} (permitted: ${permitted.join(", ") || "none"})`, 403);
  }

  /**
   * Which scopes a caller may use. A token with allowed_scopes may use exactly those
   * ("default" included only when listed); without the claim a client may use only the
   * default scope, while a datasource (OPAL's scope admin) and the mesh's own services may
   * use any.
   */
  authorizeScope(principal: Principal, scope: string): void {
    if (this.devMode) return;
    const id = scope === "" ? "default" : scope;
    const allowed = principal.allowedScopes;
    if (allowed !== undefined) {
      if (!allowed.includes(id)) throw new AuthError(`not allowed in scope ${JSON.stringify(id)} (allowed_scopes: ${allowed.join(", ") || "none"})`, 403);
      return;
    }
    if (principal.peerType === "client" && id !== "default") throw new AuthError(`not allowed in scope ${JSON.stringify(id)} (the token has no allowed_scopes claim)`, 403);
  }
}
