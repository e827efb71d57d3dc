import assert from "node:assert/strict";
import { test } from "node:test";
import { formatSecret } from "./generate-secret.js";

test("secret formats", async (t) => {
  const bytes = Uint8Array.from([0xfb, 0xff, 0x00, 0x27, 0x41, 0x5c, 0x0a]);
  const cases: Array<[Parameters<typeof formatSecret>[1], string]> = [
    ["hex", "fbff0027415c0a"],
    ["base64", "+/8AJ0FcCg=="],
    ["urlsafe", "-_8AJ0FcCg"],
    // Python: repr(b"\xfb\xff\x00'A\\\n") (double quotes: it holds a ' and no ")
    ["bytes", `b"\\xfb\\xff\\x00'A\\\\\\n"`],
  ];
  for (const [format, expected] of cases) await t.test(format, () => assert.equal(formatSecret(bytes, format), expected));
  await t.test("bytes with both quotes uses ' and escapes it", () => assert.equal(formatSecret(Uint8Array.from([0x22, 0x27]), "bytes"), `b'"\\''`));
});
