import { test } from "node:test";
import assert from "node:assert/strict";
import { anyTopicCovered, collapseTopics, topicCovers } from "./topics.js";

test("topicCovers", async (t) => {
  const cases: Array<[string, string, string, boolean]> = [
    ["same topic", "policy_data", "policy_data", true],
    ["child topic", "policy_data", "policy_data/users", true],
    ["grandchild topic", "policy_data", "policy_data/users/keys", true],
    ["parent is not covered by child", "policy_data/users", "policy_data", false],
    ["sibling with shared prefix", "policy_data", "policy_data2", false],
    ["sibling path", "policy_data/users", "policy_data/groups", false],
    ["policy nested dir", "policy:rbac", "policy:rbac/admin", true],
  ];
  for (const [name, subscribed, topic, expected] of cases) {
    await t.test(name, () => assert.equal(topicCovers(subscribed, topic), expected));
  }
});

test("anyTopicCovered matches when one pair matches", () => {
  assert.equal(anyTopicCovered(["a", "b"], ["c", "b/x"]), true);
  assert.equal(anyTopicCovered(["a", "b"], ["c", "bx"]), false);
  assert.equal(anyTopicCovered([], ["a"]), false);
});

test("collapseTopics keeps only the parents", () => {
  assert.deepEqual(collapseTopics(["a/b", "a", "c", "c", "d/e"]), ["a", "c", "d/e"]);
});
