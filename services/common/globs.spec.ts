import { test } from "node:test";
import assert from "node:assert/strict";
import { GlobSet } from "./globs.js";

test("GlobSet.matches", async (t) => {
  const cases: Array<[string, string[], string, boolean]> = [
    // `*` stays within one segment
    ["* matches a top-level file", ["*.rego"], "policy.rego", true],
    ["* does not cross a slash", ["*.rego"], "rbac/policy.rego", false],
    ["* inside a directory segment", ["rbac/*.rego"], "rbac/policy.rego", true],
    ["* in a directory does not reach deeper", ["rbac/*.rego"], "rbac/admin/policy.rego", false],
    ["* matches an empty run", ["rbac/*.rego"], "rbac/.rego", true],
    ["* in the middle of a segment", ["rbac/p*y.rego"], "rbac/policy.rego", true],
    ["* as a whole segment", ["*/policy.rego"], "rbac/policy.rego", true],
    ["* as a whole segment is one level only", ["*/policy.rego"], "a/b/policy.rego", false],
    ["no wildcard needs the whole path", ["rbac"], "rbac/policy.rego", false],
    ["no wildcard matches exactly", ["rbac/policy.rego"], "rbac/policy.rego", true],
    ["a pattern is anchored at the start", ["policy.rego"], "rbac/policy.rego", false],
    ["a pattern is anchored at the end", ["policy"], "policy.rego", false],
    // `?` is one character, never a slash
    ["? matches one character", ["policy?.rego"], "policy1.rego", true],
    ["? needs exactly one character", ["policy?.rego"], "policy.rego", false],
    ["? does not match two characters", ["policy?.rego"], "policy12.rego", false],
    ["? does not match a slash", ["rbac?policy.rego"], "rbac/policy.rego", false],
    // `**` spans segments
    ["**/ at the start matches at the root", ["**/test.rego"], "test.rego", true],
    ["**/ at the start matches one level down", ["**/test.rego"], "a/test.rego", true],
    ["**/ at the start matches many levels down", ["**/test.rego"], "a/b/c/test.rego", true],
    ["**/ does not match a longer basename", ["**/test.rego"], "a/mytest.rego", false],
    ["/**/ in the middle matches zero levels", ["a/**/b.rego"], "a/b.rego", true],
    ["/**/ in the middle matches several levels", ["a/**/b.rego"], "a/x/y/b.rego", true],
    ["/**/ in the middle keeps its prefix", ["a/**/b.rego"], "c/x/b.rego", false],
    ["** alone matches everything", ["**"], "a/b/c.rego", true],
    ["**.rego crosses segments", ["**.rego"], "a/b/c.rego", true],
    // trailing `/**` also matches the directory itself
    ["trailing /** matches the directory itself", ["tests/**"], "tests", true],
    ["trailing /** matches a child", ["tests/**"], "tests/a.rego", true],
    ["trailing /** matches a deep child", ["tests/**"], "tests/a/b/c.rego", true],
    ["trailing /** does not match a sibling with the same prefix", ["tests/**"], "tests2/a.rego", false],
    ["trailing /** does not match a file named like the prefix", ["tests/**"], "testsuite.rego", false],
    ["trailing /** is anchored at the root", ["tests/**"], "a/tests/b.rego", false],
    ["nested trailing /** matches its directory", ["a/b/**"], "a/b", true],
    ["nested trailing /** does not match the parent", ["a/b/**"], "a", false],
    ["**/x/** matches a directory at any depth", ["**/fixtures/**"], "a/b/fixtures/data.json", true],
    ["**/x/** matches the directory at the root", ["**/fixtures/**"], "fixtures", true],
    // special characters are literal
    ["a dot is literal", ["a.rego"], "axrego", false],
    ["regex characters are literal", ["a+(b)|[c]{1}$.rego"], "a+(b)|[c]{1}$.rego", true],
    ["regex characters do not act as regex", ["a+.rego"], "aa.rego", false],
    ["a caret is literal", ["^a.rego"], "^a.rego", true],
    // leading "./" or "/" is stripped
    ["leading ./ is stripped", ["./tests/**"], "tests/a.rego", true],
    ["leading / is stripped", ["/tests/**"], "tests/a.rego", true],
    ["leading ./ on a negation is stripped", ["tests/**", "!./tests/keep.rego"], "tests/keep.rego", false],
    ["only one leading ./ is stripped", ["../a.rego"], "a.rego", false],
    // negation: the later match wins
    ["a negation alone matches nothing", ["!a.rego"], "a.rego", false],
    ["a negation alone does not match other files", ["!a.rego"], "b.rego", false],
    ["a later negation re-includes", ["tests/**", "!tests/keep.rego"], "tests/keep.rego", false],
    ["a later negation leaves the rest ignored", ["tests/**", "!tests/keep.rego"], "tests/drop.rego", true],
    ["a later positive match wins over an earlier negation", ["tests/**", "!tests/keep.rego", "tests/keep.rego"], "tests/keep.rego", true],
    ["an earlier negation does not undo a later match", ["!tests/keep.rego", "tests/**"], "tests/keep.rego", true],
    ["a negation with wildcards", ["**/*.rego", "!**/*_test.rego"], "a/b_test.rego", false],
    ["a negation with wildcards leaves others", ["**/*.rego", "!**/*_test.rego"], "a/b.rego", true],
    // whitespace and empty patterns
    ["patterns are trimmed", ["  tests/**  "], "tests/a.rego", true],
    ["empty patterns are dropped", ["", "  "], "", false],
    ["no patterns match nothing", [], "a.rego", false],
    ["one of several patterns matches", ["x/**", "*.json"], "data.json", true],
  ];
  for (const [name, globs, path, expected] of cases) {
    await t.test(name, () => assert.equal(new GlobSet(globs).matches(path), expected, `${JSON.stringify(globs)} on ${JSON.stringify(path)}`));
  }
});

test("GlobSet.isEmpty", async (t) => {
  const cases: Array<[string, string[], boolean]> = [
    ["no patterns", [], true],
    ["only blank patterns", ["", " ", "\t"], true],
    ["one pattern", ["*.rego"], false],
    ["a negation counts as a pattern", ["!a.rego"], false],
  ];
  for (const [name, globs, expected] of cases) {
    await t.test(name, () => assert.equal(new GlobSet(globs).isEmpty, expected));
  }
});
