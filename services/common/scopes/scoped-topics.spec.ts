import { test } from "node:test";
import assert from "node:assert/strict";
import { isScopedTopic, scopeIdProblem, scopeOfTopic, scopeTopic, unscopeTopic } from "./scoped-topics.js";

test("a scope's topics are OPAL's names, and strip back to plain ones", () => {
  assert.equal(scopeTopic("acme", "policy_data"), "acme:data:policy_data");
  assert.equal(scopeTopic("acme", "policy_data/users"), "acme:data:policy_data/users");
  assert.equal(scopeTopic("acme", "policy:."), "acme:policy:.");
  assert.equal(scopeTopic("default", "policy_data"), "policy_data");
  assert.equal(scopeTopic("", "policy:rbac"), "policy:rbac");
  for (const topic of ["policy_data", "policy_data/users", "policy:.", "policy:rbac/x"]) assert.equal(unscopeTopic(scopeTopic("t-1", topic)), topic);
  assert.equal(unscopeTopic("acme:scope"), "scope");
});

test("which scope a topic belongs to", () => {
  assert.equal(scopeOfTopic("acme:data:policy_data"), "acme");
  assert.equal(scopeOfTopic("acme:policy:."), "acme");
  assert.equal(scopeOfTopic("acme:scope"), "acme");
  assert.equal(scopeOfTopic("policy_data"), "default");
  // A policy directory named like a scope's section is still the default scope's policy.
  assert.equal(scopeOfTopic("policy:data"), "default");
  assert.equal(scopeOfTopic("policy:scope"), "default");
  // Colons elsewhere do not make a scope.
  assert.equal(scopeOfTopic("app::topic"), "default");
  assert.equal(scopeOfTopic("a:b:c"), "default");
  assert.equal(isScopedTopic("b:data:policy_data"), true);
  assert.equal(isScopedTopic("policy_data"), false);
});

test("scope ids", () => {
  assert.equal(scopeIdProblem("tenant-1.eu_west"), undefined);
  assert.match(scopeIdProblem("") ?? "", /letters/);
  assert.match(scopeIdProblem("a b") ?? "", /letters/);
  assert.match(scopeIdProblem("-x") ?? "", /starting/);
  assert.match(scopeIdProblem("x".repeat(129)) ?? "", /1-128/);
  assert.match(scopeIdProblem("policy") ?? "", /policy topic/);
});
