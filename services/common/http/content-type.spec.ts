import { test } from "node:test";
import assert from "node:assert/strict";
import { jsonContentTypeProblem } from "./content-type.js";

test("JSON in UTF-8 is accepted, in any case and with other parameters", () => {
  for (const header of [
    "application/json",
    "Application/JSON",
    "application/json; charset=utf-8",
    "application/json;charset=UTF-8",
    'application/json; charset="utf-8"',
    "application/merge-patch+json",
    "application/json-patch+json; charset=utf-8",
    "application/vnd.github+json",
    "application/json; profile=x",
  ]) {
    assert.equal(jsonContentTypeProblem(header), undefined, header);
  }
});

test("anything else is refused, naming what came and what is accepted", () => {
  const cases: Array<[string, string | undefined, RegExp]> = [
    ["no content type", undefined, /has no content type; expected application\/json/],
    ["an empty content type", "  ", /has no content type/],
    ["text/plain (sent cross-origin without a preflight)", "text/plain", /unsupported content type "text\/plain"; expected application\/json/],
    ["a form", "application/x-www-form-urlencoded", /"application\/x-www-form-urlencoded"/],
    ["multipart", "multipart/form-data; boundary=x", /"multipart\/form-data; boundary=x"/],
    ["XML", "application/xml", /"application\/xml"/],
    ["text/json is not application/json", "text/json", /"text\/json"/],
    ["a json prefix is not json", "application/jsonx", /"application\/jsonx"/],
    ["+json needs a subtype before it", "application/+json", /"application\/\+json"/],
    ["UTF-16", "application/json; charset=utf-16", /unsupported charset in content type "application\/json; charset=utf-16"/],
    ["Latin-1", "application/json;charset=ISO-8859-1", /unsupported charset/],
    ["an empty charset", "application/json; charset=", /unsupported charset/],
  ];
  for (const [name, header, expected] of cases) assert.match(jsonContentTypeProblem(header) ?? "accepted", expected, name);
});
