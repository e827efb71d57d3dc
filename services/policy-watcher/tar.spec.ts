import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, linkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gunzipSync, gzipSync } from "node:zlib";
import { extractTarGz, normaliseEntryPath, UnsafeBundleError } from "./tar.js";

// Archives come from the system's GNU tar, so the reader is tested against what real
// bundle servers produce (GNU, pax and ustar headers), not against our own writer.
const gnuTar = ((): boolean => {
  try {
    return execFileSync("tar", ["--version"], { encoding: "utf8" }).includes("GNU tar");
  } catch {
    return false;
  }
})();
// A missing component fails loudly (with how to get it), never skips.
if (!gnuTar) throw new Error("tar.spec.ts needs GNU tar on PATH (Debian: apt-get install tar)");

const LIMITS = { maxBytes: 1 << 20, maxFiles: 100 };
let root = "";
let workspaces = 0;

before(() => {
  root = mkdtempSync(join(tmpdir(), "opal-tar-spec-"));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A fresh directory holding `files` (path → content). */
function workspace(files: Record<string, string | Uint8Array>): string {
  const dir = join(root, `ws${++workspaces}`);
  mkdirSync(dir, { recursive: true });
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

/** Runs `tar -c <args>` in `dir` and returns the uncompressed archive. */
function tar(dir: string, args: string[]): Buffer {
  const out = join(dir, "..", `${dir.split("/").pop()}.tar`);
  execFileSync("tar", ["-cf", out, ...args], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  return readFileSync(out);
}

function tarGz(dir: string, args: string[]): Buffer {
  return gzipSync(tar(dir, args));
}

function text(files: Map<string, Uint8Array>): Record<string, string> {
  return Object.fromEntries([...files].sort(([a], [b]) => a.localeCompare(b)).map(([path, bytes]) => [path, Buffer.from(bytes).toString("utf8")]));
}

function assertRefused(bytes: Uint8Array, message: RegExp, limits = LIMITS): void {
  assert.throws(
    () => extractTarGz(bytes, limits),
    (error: unknown) => {
      assert.ok(error instanceof UnsafeBundleError, `expected UnsafeBundleError, got ${String(error)}`);
      assert.match(error.message, message);
      return true;
    },
  );
}

describe("extractTarGz", () => {
  const policy = "package rbac\n\nallow if input.user == \"admin\"\n";
  const nested = {
    "rbac/policy.rego": policy,
    "rbac/sub/deep/data.json": '{"roles":["admin"]}',
    "root.rego": "package root\n",
    "empty.rego": "",
    "block.rego": "x".repeat(512),
    "block-and-one.rego": "y".repeat(513),
  };

  test("reads regular files in nested directories, skipping directory entries", () => {
    const dir = workspace(nested);
    const files = extractTarGz(tarGz(dir, ["rbac", "root.rego", "empty.rego", "block.rego", "block-and-one.rego"]), LIMITS);
    assert.deepEqual(text(files), text(new Map(Object.entries(nested).map(([path, content]) => [path, Buffer.from(content)]))));
  });

  test('strips a leading "./" from every path', () => {
    const dir = workspace(nested);
    const archive = tar(dir, ["."]);
    const listing = execFileSync("tar", ["-tf", "-"], { input: archive, encoding: "utf8" }).split("\n");
    assert.ok(listing.includes("./rbac/policy.rego"), "tar stored ./-prefixed names");
    const files = extractTarGz(gzipSync(archive), LIMITS);
    assert.deepEqual([...files.keys()].sort(), Object.keys(nested).sort());
    assert.equal(Buffer.from(files.get("rbac/policy.rego") ?? []).toString(), policy);
  });

  const long = `${"a".repeat(90)}/${"b".repeat(40)}/policy.rego`;
  const veryLong = `${"c".repeat(90)}/${"d".repeat(90)}/${"e".repeat(90)}/${"f".repeat(40)}.rego`;
  const unicode = "pölicy/ünïcode.rego";
  const formats = [
    { format: "gnu", paths: [long, veryLong, unicode], marker: "././@LongLink" },
    { format: "pax", paths: [long, veryLong, unicode], marker: " path=" },
    { format: "ustar", paths: [long], marker: "ustar\u000000" },
  ];
  for (const { format, paths, marker } of formats) {
    test(`reads names longer than 100 bytes from --format=${format} archives`, () => {
      const dir = workspace(Object.fromEntries(paths.map((path) => [path, `content of ${path}`])));
      const archive = tar(dir, [`--format=${format}`, ...paths]);
      assert.ok(archive.includes(marker), `the ${format} archive uses its long-name mechanism`);
      const files = extractTarGz(gzipSync(archive), LIMITS);
      assert.deepEqual([...files.keys()].sort(), [...paths].sort());
      for (const path of paths) assert.equal(Buffer.from(files.get(path) ?? []).toString(), `content of ${path}`);
    });
  }

  test("takes a file's size from its pax header over the ustar field", () => {
    const dir = workspace({ "p.rego": "z".repeat(700) });
    const archive = tar(dir, ["--format=pax", "--pax-option=size:=700", "p.rego"]);
    assert.ok(archive.includes(" size=700"));
    // Writers zero the ustar field when the size only fits in pax (8 GiB and more); do the same here.
    const paxSize = parseInt(archive.subarray(124, 136).toString("latin1").replace(/\0.*$/, ""), 8);
    const fileHeader = 512 + Math.ceil(paxSize / 512) * 512;
    assert.equal(archive[fileHeader + 156], "0".charCodeAt(0));
    archive.write("00000000000\0", fileHeader + 124, "latin1");
    archive.write("        ", fileHeader + 148, "latin1");
    const checksum = archive.subarray(fileHeader, fileHeader + 512).reduce((sum, byte) => sum + byte, 0);
    archive.write(`${checksum.toString(8).padStart(6, "0")}\0 `, fileHeader + 148, "latin1");
    assert.equal(extractTarGz(gzipSync(archive), LIMITS).get("p.rego")?.length, 700);
  });

  const traversals = [
    { stored: "../x", transform: "s,^x$,../x," },
    { stored: "/../x", transform: "s,^x$,/../x," },
    { stored: "a/../../x", transform: "s,^x$,a/../../x," },
    { stored: "a/../x", transform: "s,^x$,a/../x," },
    { stored: "./../x", transform: "s,^x$,./../x," },
  ];
  for (const { stored, transform } of traversals) {
    test(`refuses the whole bundle when an entry is ${JSON.stringify(stored)}`, () => {
      const dir = workspace({ "good.rego": "package good\n", x: "secret" });
      const archive = tar(dir, ["-P", `--transform=${transform}`, "good.rego", "x"]);
      const listing = execFileSync("tar", ["-tPf", "-"], { input: archive, encoding: "utf8" });
      assert.ok(listing.split("\n").includes(stored), `tar stored ${stored}`);
      assertRefused(gzipSync(archive), new RegExp(`${JSON.stringify(stored).replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}.*(absolute|"\\.\\.")`));
    });
  }

  test("refuses symbolic links, whether they point outside or inside the bundle", () => {
    for (const target of ["/etc/passwd", "good.rego"]) {
      const dir = workspace({ "good.rego": "package good\n" });
      symlinkSync(target, join(dir, "link.rego"));
      assertRefused(tarGz(dir, ["good.rego", "link.rego"]), /"link\.rego" is a symbolic link/);
    }
  });

  test("refuses hard links", () => {
    const dir = workspace({ "good.rego": "package good\n" });
    linkSync(join(dir, "good.rego"), join(dir, "alias.rego"));
    assertRefused(tarGz(dir, ["good.rego", "alias.rego"]), /"alias\.rego" is a hard link/);
  });

  test("refuses special files such as FIFOs", () => {
    const dir = workspace({ "good.rego": "package good\n" });
    execFileSync("mkfifo", [join(dir, "pipe")]);
    assertRefused(tarGz(dir, ["good.rego", "pipe"]), /"pipe" has unsupported tar type "6"/);
  });

  test("enforces maxBytes on the files' total size, inclusive", () => {
    const dir = workspace({ "a.rego": "a".repeat(100), "b.rego": "b".repeat(50) });
    const archive = tarGz(dir, ["a.rego", "b.rego"]);
    assert.equal(extractTarGz(archive, { maxBytes: 150, maxFiles: 10 }).size, 2);
    assertRefused(archive, /exceed 149 bytes \(at "b\.rego"\)/, { maxBytes: 149, maxFiles: 10 });
  });

  test("enforces maxFiles on the number of entries, inclusive", () => {
    const dir = workspace({ "a.rego": "a", "b.rego": "b", "c.rego": "c" });
    const archive = tarGz(dir, ["a.rego", "b.rego", "c.rego"]);
    assert.equal(extractTarGz(archive, { maxBytes: 100, maxFiles: 3 }).size, 3);
    assertRefused(archive, /more than 2 entries \(at "c\.rego"\)/, { maxBytes: 100, maxFiles: 2 });
  });

  test("refuses a gzip bomb while decompressing", () => {
    const dir = workspace({ "zeros.json": new Uint8Array(20 << 20) });
    const archive = tarGz(dir, ["zeros.json"]);
    assert.ok(archive.length < 100_000, "20 MiB of zeros compress to a small archive");
    assertRefused(archive, /decompresses to more than \d+ bytes/, { maxBytes: 1 << 20, maxFiles: 10 });
  });

  test("refuses a header whose checksum does not match", () => {
    const archive = tar(workspace({ "good.rego": "package good\n" }), ["good.rego"]);
    archive[0] = "h".charCodeAt(0);
    assertRefused(gzipSync(archive), /checksum does not match/);
  });

  test("refuses a tar archive cut inside a file's data", () => {
    const archive = tar(workspace({ "big.rego": "b".repeat(2000) }), ["big.rego"]);
    assertRefused(gzipSync(archive.subarray(0, 512 + 1000)), /truncated: entry "big\.rego" needs 2000 bytes/);
  });

  test("refuses a tar archive cut at a block boundary, without its end-of-archive block", () => {
    const archive = tar(workspace({ "a.rego": "a" }), ["a.rego"]);
    assertRefused(gzipSync(archive.subarray(0, 1024)), /end-of-archive/);
  });

  test("refuses corrupt, truncated or non-gzip input", () => {
    const archive = tarGz(workspace({ "a.rego": "package a\n".repeat(200) }), ["a.rego"]);
    assert.doesNotThrow(() => gunzipSync(archive));
    const flipped = Buffer.from(archive);
    const middle = Math.floor(flipped.length / 2);
    flipped[middle] = (flipped[middle] ?? 0) ^ 0xff;
    assertRefused(flipped, /not a readable gzip stream/);
    assertRefused(archive.subarray(0, Math.floor(archive.length / 2)), /not a readable gzip stream/);
    assertRefused(Buffer.from("not a tarball"), /not a readable gzip stream/);
    assertRefused(new Uint8Array(), /not a readable gzip stream/);
  });

  test("returns copies that do not alias the decompressed archive", () => {
    const files = extractTarGz(tarGz(workspace({ "a.rego": "a", "b.rego": "b" }), ["a.rego", "b.rego"]), LIMITS);
    const a = files.get("a.rego");
    assert.ok(a !== undefined);
    assert.equal(a.byteOffset, 0);
    assert.equal(a.buffer.byteLength, 1);
  });

  test("rejects limits that are not non-negative integers", () => {
    const archive = tarGz(workspace({ "a.rego": "a" }), ["a.rego"]);
    assert.throws(() => extractTarGz(archive, { maxBytes: -1, maxFiles: 1 }), RangeError);
    assert.throws(() => extractTarGz(archive, { maxBytes: 10, maxFiles: Number.NaN }), RangeError);
  });
});

describe("normaliseEntryPath", () => {
  const accepted: Array<[string, string]> = [
    ["rbac/policy.rego", "rbac/policy.rego"],
    ["./rbac/policy.rego", "rbac/policy.rego"],
    ["rbac//./policy.rego", "rbac/policy.rego"],
    ["rbac/", "rbac"],
    ["./", ""],
    ["..rego/x..y", "..rego/x..y"],
    // `opa build` names every entry from the bundle's root.
    ["/data.json", "data.json"],
    ["/rbac/policy.rego", "rbac/policy.rego"],
  ];
  for (const [input, expected] of accepted) {
    test(`${JSON.stringify(input)} is ${JSON.stringify(expected)}`, () => assert.equal(normaliseEntryPath(input), expected));
  }
  const refused: Array<[string, RegExp]> = [
    ["C:/Windows/x", /absolute/],
    ["../x", /"\.\."/],
    ["a/b/..", /"\.\."/],
    ["a\\..\\x", /backslash/],
  ];
  for (const [input, message] of refused) {
    test(`${JSON.stringify(input)} is refused`, () => assert.throws(() => normaliseEntryPath(input), { name: "UnsafeBundleError", message }));
  }
});
