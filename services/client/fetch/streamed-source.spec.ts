import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { documentHash, StreamedSource } from "./streamed-source.js";
import type { OpenedBody } from "./types.js";

function body(text: string, onDiscard: () => void = () => undefined): OpenedBody {
  return {
    chunks: (async function* () {
      for (let start = 0; start < text.length; start += 3) yield Buffer.from(text.slice(start, start + 3));
    })(),
    length: text.length,
    discard: onDiscard,
  };
}

async function read(source: StreamedSource): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of source.chunks()) chunks.push(chunk);
  return Buffer.concat(chunks).toString();
}

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

test("the body opened at fetch time is read first; a second write opens the source again", async () => {
  let reopened = 0;
  let discarded = 0;
  const source = new StreamedSource(
    body('{"v":1}', () => discarded++),
    async () => {
      reopened++;
      return body('{"v":2}');
    },
    "http://source/data",
  );
  assert.equal(source.length, 7);
  assert.equal(await read(source), '{"v":1}');
  assert.equal(source.hash, sha256('{"v":1}'));
  assert.equal(discarded, 1, "the connection is let go once read");
  assert.equal(await read(source), '{"v":2}');
  assert.equal(reopened, 1);
  assert.equal(documentHash(source), sha256('{"v":2}'), "the report hash is of what was written last");
});

test("a source that shrank below the streaming size on a retry is written from its bytes", async () => {
  const source = new StreamedSource(body("[1]"), async () => Buffer.from("[]"), "http://source/data");
  await read(source);
  assert.equal(await read(source), "[]");
});

test("release() frees a body no write read, and nothing is hashed", async () => {
  let discarded = 0;
  const source = new StreamedSource(
    body("{}", () => discarded++),
    async () => body("{}"),
    "http://source/data",
  );
  source.release();
  source.release();
  assert.equal(discarded, 1);
  assert.equal(source.hash, undefined);
});

test("a write abandoned mid-way lets the connection go, and records no hash", async () => {
  let discarded = 0;
  const source = new StreamedSource(
    body('{"long":"document"}', () => discarded++),
    async () => body("{}"),
    "http://source/data",
  );
  for await (const chunk of source.chunks()) {
    assert.ok(chunk.byteLength > 0);
    break;
  }
  assert.equal(discarded, 1);
  assert.equal(source.hash, undefined);
});
