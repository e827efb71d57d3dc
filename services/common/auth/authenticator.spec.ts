import { test } from "node:test";
import assert from "node:assert/strict";
import { Authenticator } from "./authenticator.js";
import { AuthError, type PeerType, type Principal, type TokenVerifier } from "./tokens.js";

// authorizeScope and authorizeTopics never verify a token: any verifier makes it secure mode.
const secure = new Authenticator({} as TokenVerifier, undefined);
const dev = new Authenticator(undefined, undefined);

function principal(peerType: PeerType, claims: { allowedScopes?: string[]; permittedTopics?: string[] } = {}): Principal {
  return { subject: "s", peerType, permittedTopics: claims.permittedTopics, allowedScopes: claims.allowedScopes, claims: {} };
}

const denied = (run: () => void): boolean => {
  try {
    run();
    return false;
  } catch (error) {
    assert.ok(error instanceof AuthError && error.status === 403);
    return true;
  }
};

test("allowed_scopes lists exactly the scopes a token may use, default included only when listed", () => {
  const tenant = principal("client", { allowedScopes: ["a"] });
  assert.equal(denied(() => secure.authorizeScope(tenant, "a")), false);
  assert.equal(denied(() => secure.authorizeScope(tenant, "b")), true);
  assert.equal(denied(() => secure.authorizeScope(tenant, "default")), true);
  assert.equal(denied(() => secure.authorizeScope(tenant, "")), true);
  assert.equal(denied(() => secure.authorizeScope(principal("client", { allowedScopes: ["a", "default"] }), "")), false);
});

test("without the claim: a client only the default scope; datasources and services any", () => {
  assert.equal(denied(() => secure.authorizeScope(principal("client"), "default")), false);
  assert.equal(denied(() => secure.authorizeScope(principal("client"), "a")), true);
  assert.equal(denied(() => secure.authorizeScope(principal("datasource"), "a")), false);
  assert.equal(denied(() => secure.authorizeScope(principal("service"), "a")), false);
  assert.equal(denied(() => secure.authorizeScope(principal("datasource", { allowedScopes: ["a"] }), "b")), true);
});

test("dev mode allows every scope and topic", () => {
  assert.equal(denied(() => dev.authorizeScope(principal("client", { allowedScopes: ["a"] }), "b")), false);
  assert.equal(denied(() => dev.authorizeTopics(principal("client", { permittedTopics: ["x"] }), ["y"])), false);
});

test("permitted_topics are hierarchical", () => {
  const narrow = principal("client", { permittedTopics: ["policy_data/public"] });
  assert.equal(denied(() => secure.authorizeTopics(narrow, ["policy_data/public", "policy_data/public/x"])), false);
  assert.equal(denied(() => secure.authorizeTopics(narrow, ["policy_data"])), true);
  assert.equal(denied(() => secure.authorizeTopics(narrow, ["policy_data/publicity"])), true);
});
