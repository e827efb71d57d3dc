/** OPAL's `POST /token` (master token) and `/.well-known/jwks.json`. */
import { randomUUID } from "node:crypto";
import type { Security } from "./security.js";
import { PEER_TYPES, type PeerType } from "./tokens.js";
import { HttpError, readJson, sendJson } from "../http/json-io.js";
import type { RestRoute } from "../http/rest-router.js";
import type { Limits } from "../config/limits-config.js";
import type { Logger } from "../logger.js";

const ISSUABLE: readonly PeerType[] = ["client", "datasource", "listener"];
const DEFAULT_TTL_SECONDS = 365 * 24 * 3_600;

/** OPAL's ttl: seconds, or an ISO 8601 duration (P1D, PT1H30M…). */
export function parseTtl(value: unknown): number {
  if (value === undefined || value === null) return DEFAULT_TTL_SECONDS;
  if (typeof value === "number" && Number.isFinite(value) && value > 0) return Math.floor(value);
  if (typeof value === "string") {
    const match = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(value);
    if (match !== null && value !== "P" && value !== "PT") {
      const [, days = "0", hours = "0", minutes = "0", seconds = "0"] = match;
      const total = Number(days) * 86_400 + Number(hours) * 3_600 + Number(minutes) * 60 + Number(seconds);
      if (total > 0) return Math.floor(total);
    }
    if (/^\d+(\.\d+)?$/.test(value) && Number(value) > 0) return Math.floor(Number(value));
  }
  throw new HttpError(422, `ttl must be a positive number of seconds or an ISO 8601 duration, got ${JSON.stringify(value)}`);
}

export function securityRoutes(security: Security, logger: Logger, limits: Limits): RestRoute[] {
  return [
    {
      method: "GET",
      path: "/.well-known/jwks.json",
      auth: "open",
      handle: async (_request, response) => sendJson(response, 200, await security.jwks()),
    },
    {
      method: "POST",
      path: "/token",
      auth: "self",
      async handle(request, response) {
        if (security.devMode) throw new HttpError(503, "this server has no signing keys (dev mode): set OPAL_AUTH_PRIVATE_KEY and OPAL_AUTH_PUBLIC_KEY");
        (await security.authenticator()).checkMaster(request.headers.authorization);
        const body = (await readJson(request, limits.maxBodyBytes, limits.maxJsonDepth)) as Record<string, unknown>;
        if (typeof body !== "object" || body === null || Array.isArray(body)) throw new HttpError(422, "expected OPAL's AccessTokenRequest object");
        const type = body.type ?? "client";
        if (typeof type !== "string" || !(ISSUABLE as readonly string[]).includes(type)) {
          throw new HttpError(422, `type must be one of ${ISSUABLE.join(", ")}, got ${JSON.stringify(type)}${(PEER_TYPES as readonly unknown[]).includes(type) ? " (service tokens are not issued)" : ""}`);
        }
        const claims = body.claims ?? {};
        if (typeof claims !== "object" || claims === null || Array.isArray(claims)) throw new HttpError(422, "claims must be an object");
        for (const claim of ["permitted_topics", "allowed_scopes"] as const) {
          const list = (claims as Record<string, unknown>)[claim];
          if (list !== undefined && (!Array.isArray(list) || !list.every((item) => typeof item === "string"))) throw new HttpError(422, `claims.${claim} must be a list of strings`);
        }
        if (body.id !== undefined && body.id !== null && typeof body.id !== "string") throw new HttpError(422, "id must be a UUID string");
        const id = typeof body.id === "string" ? body.id.replaceAll("-", "") : randomUUID().replaceAll("-", "");
        if (!/^[0-9a-f]{32}$/i.test(id)) throw new HttpError(422, "id must be a UUID");
        const issued = await security.issue({ peerType: type as PeerType, id, ttlSeconds: parseTtl(body.ttl), claims: claims as Record<string, unknown> });
        if (issued === undefined) throw new HttpError(503, "this process cannot sign tokens");
        logger.info({ id, type }, "token issued");
        sendJson(response, 200, { token: issued.token, type: "bearer", details: { id, type, expired: issued.expiresAt.toISOString(), claims } });
      },
    },
  ];
}
