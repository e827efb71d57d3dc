import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../common/logger.js";
import type { DataWrite, PatchOperation, PolicyStore } from "./policy-store.js";
import { StoreBackup } from "./store-backup.js";

type Json = unknown;

function segments(path: string): string[] {
  return path.split("/").filter((segment) => segment !== "");
}

function isObject(value: Json): value is Record<string, Json> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * An in-memory store with OPA's REST semantics for what the backup uses: reading a missing
 * path answers undefined, PUT creates missing parents, and policies are a map of sources.
 */
class MemoryStore implements PolicyStore {
  readonly name = "memory";
  data: Json = {};
  readonly policies = new Map<string, string>();
  /** Every write, in order, as "METHOD path" (policies as "PUT policy id"). */
  readonly writes: string[] = [];

  async readData(path: string): Promise<unknown> {
    let current: Json = this.data;
    for (const segment of segments(path)) {
      if (!isObject(current) || !Object.hasOwn(current, segment)) return undefined;
      current = current[segment];
    }
    return structuredClone(current);
  }

  async writeData(write: DataWrite): Promise<void> {
    this.writes.push(`${write.method} ${write.path}`);
    const parts = segments(write.path);
    const key = parts.pop();
    if (write.method === "PATCH") throw new Error("not used by the backup");
    const value = write.body === undefined ? undefined : (JSON.parse(Buffer.from(write.body).toString("utf8")) as Json);
    if (key === undefined) {
      this.data = write.method === "DELETE" ? {} : value;
      return;
    }
    let parent = this.data as Record<string, Json>;
    for (const segment of parts) {
      if (!isObject(parent[segment])) {
        if (write.method === "DELETE") return;
        parent[segment] = {};
      }
      parent = parent[segment] as Record<string, Json>;
    }
    if (write.method === "DELETE") delete parent[key];
    else parent[key] = value;
  }

  async putPolicy(id: string, rego: string): Promise<void> {
    this.writes.push(`PUT policy ${id}`);
    this.policies.set(id, rego);
  }

  async deletePolicy(id: string): Promise<void> {
    this.writes.push(`DELETE policy ${id}`);
    this.policies.delete(id);
  }

  async listPolicies(): Promise<Array<{ id: string; raw: string }>> {
    return [...this.policies].map(([id, raw]) => ({ id, raw }));
  }

  async isHealthy(): Promise<boolean> {
    return true;
  }
  async patch(_operations: readonly PatchOperation[]): Promise<void> {
    throw new Error("not used by the backup");
  }
  async exists(path: string): Promise<boolean> {
    return (await this.readData(path)) !== undefined;
  }
  async close(): Promise<void> {}
}

const STATUS = { position: 12, log_id: "log-1", ready: true };
const POLICIES: Array<[string, string]> = [
  ["rbac.rego", "package app.rbac\n\ndefault allow := false\n"],
  ["utils/strings.rego", "package app.utils\n\nupper(s) := upper(s)\n"],
];

/** A store as a running client leaves it: policies, data and the status document. */
function populatedStore(): MemoryStore {
  const store = new MemoryStore();
  for (const [id, raw] of POLICIES) store.policies.set(id, raw);
  store.data = { users: { alice: { role: "admin" } }, list: [1, "two", null], system: { opal: STATUS } };
  return store;
}

async function temporaryDirectory(t: TestContext): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), "store-backup-spec-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  return directory;
}

interface BackupFile {
  version: number;
  saved_at: string;
  policies: Array<{ id: string; raw: string }>;
  data: Json;
  status: Json;
}

async function readBackup(path: string): Promise<BackupFile> {
  return JSON.parse(await readFile(path, "utf8")) as BackupFile;
}

test("save() writes the store to a file", async (t) => {
  const directory = await temporaryDirectory(t);
  const path = join(directory, "backup.json");
  const store = populatedStore();
  await new StoreBackup(path, store, silentLogger()).save();

  const backup = await readBackup(path);
  assert.equal(backup.version, 1);
  assert.ok(!Number.isNaN(Date.parse(backup.saved_at)), backup.saved_at);
  assert.deepEqual(
    backup.policies,
    POLICIES.map(([id, raw]) => ({ id, raw })),
  );
  assert.deepEqual(backup.data, store.data);
  assert.deepEqual(backup.status, STATUS);
  assert.deepEqual(await readdir(directory), ["backup.json"], "no temporary file left behind");
  assert.equal((await stat(path)).mode & 0o777, 0o600, "readable by its owner only");
  assert.deepEqual(store.writes, [], "saving does not write to the store");
});

test("save() creates the backup's directory", async (t) => {
  const directory = await temporaryDirectory(t);
  const path = join(directory, "nested", "deeper", "backup.json");
  await new StoreBackup(path, populatedStore(), silentLogger()).save();
  assert.deepEqual((await readBackup(path)).status, STATUS);
});

test("save() replaces an earlier backup", async (t) => {
  const directory = await temporaryDirectory(t);
  const path = join(directory, "backup.json");
  const store = populatedStore();
  const backup = new StoreBackup(path, store, silentLogger());
  await backup.save();
  store.data = { users: {}, system: { opal: { ...STATUS, position: 13 } } };
  store.policies.delete("rbac.rego");
  await backup.save();

  const saved = await readBackup(path);
  assert.deepEqual(saved.data, store.data);
  assert.deepEqual(saved.status, { ...STATUS, position: 13 });
  assert.deepEqual(
    saved.policies.map((policy) => policy.id),
    ["utils/strings.rego"],
  );
  assert.deepEqual(await readdir(directory), ["backup.json"], "no temporary file left behind");
});

test("save() does nothing before the status document exists", async (t) => {
  await t.test("no file is created", async (t) => {
    const directory = await temporaryDirectory(t);
    const store = populatedStore();
    store.data = { users: {} };
    await new StoreBackup(join(directory, "backup.json"), store, silentLogger()).save();
    assert.deepEqual(await readdir(directory), []);
  });

  await t.test("an earlier backup is kept as it was", async (t) => {
    const directory = await temporaryDirectory(t);
    const path = join(directory, "backup.json");
    const store = populatedStore();
    const backup = new StoreBackup(path, store, silentLogger());
    await backup.save();
    const before = await readFile(path, "utf8");
    store.data = { users: {} };
    await backup.save();
    assert.equal(await readFile(path, "utf8"), before);
  });
});

test("restore() loads a saved backup into an empty store", async (t) => {
  const directory = await temporaryDirectory(t);
  const path = join(directory, "backup.json");
  const source = populatedStore();
  await new StoreBackup(path, source, silentLogger()).save();

  const target = new MemoryStore();
  assert.deepEqual(await new StoreBackup(path, target, silentLogger()).restore(), { used: true });
  assert.deepEqual([...target.policies], POLICIES);
  assert.deepEqual(target.data, source.data);
  assert.deepEqual(await target.readData("/system/opal"), STATUS);
  assert.deepEqual(target.writes.slice(-2), ["PUT /", "PUT /system/opal"], "data, then the status");
});

test("restore() without a usable backup returns false and leaves the store alone", async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ["no file", undefined],
    ["not JSON", "this is not json"],
    ["truncated JSON", '{"version":1,"policies":[{"id":"a.rego","raw":"package a"}],"data":{'],
    ["an empty file", ""],
    ["null", "null"],
    ["a list", "[]"],
    ["an unknown version", JSON.stringify({ version: 2, saved_at: "", policies: [], data: {}, status: STATUS })],
    ["policies that are not a list", JSON.stringify({ version: 1, saved_at: "", policies: {}, data: {}, status: STATUS })],
  ];
  for (const [name, content] of cases) {
    await t.test(name, async (t) => {
      const directory = await temporaryDirectory(t);
      const path = join(directory, "backup.json");
      if (content !== undefined) await writeFile(path, content);
      const store = new MemoryStore();
      const outcome = await new StoreBackup(path, store, silentLogger()).restore();
      assert.equal(outcome.used, false);
      // A backup that is there but unusable is named (health shows it); no file is nothing to say.
      if (content === undefined) assert.equal(outcome.problem, undefined);
      else assert.match(outcome.problem ?? "", /the store backup at .*backup\.json is unreadable/);
      assert.deepEqual(store.writes, []);
      assert.deepEqual(store.data, {});
    });
  }

  await t.test("a directory where the file should be", async (t) => {
    const directory = await temporaryDirectory(t);
    const path = join(directory, "backup.json");
    await mkdir(path);
    const store = new MemoryStore();
    assert.equal((await new StoreBackup(path, store, silentLogger()).restore()).used, false);
    assert.deepEqual(store.writes, []);
  });

  await t.test(
    "a backup without data and status",
    {
    },
    async (t) => {
      const directory = await temporaryDirectory(t);
      const path = join(directory, "backup.json");
      await writeFile(path, JSON.stringify({ version: 1, saved_at: "", policies: [] }));
      const store = new MemoryStore();
      assert.equal((await new StoreBackup(path, store, silentLogger()).restore()).used, false);
      assert.deepEqual(store.writes, []);
    },
  );
});

test("save() that fails leaves no temporary file, keeps the earlier backup, and says why", async (t) => {
  const cases: Array<[string, (directory: string) => Promise<string>]> = [
    // chmod does not stop root: these fail for every user.
    ["the backup's directory is a regular file", async (directory) => {
      await writeFile(join(directory, "file"), "");
      return join(directory, "file", "backup.json");
    }],
    ["a directory where the backup should be", async (directory) => {
      await mkdir(join(directory, "backup.json"));
      return join(directory, "backup.json");
    }],
  ];
  for (const [name, prepare] of cases) {
    await t.test(name, async (t) => {
      const directory = await temporaryDirectory(t);
      const path = await prepare(directory);
      const outcomes: boolean[] = [];
      const backup = new StoreBackup(path, populatedStore(), silentLogger(), (ok) => outcomes.push(ok));
      await assert.rejects(backup.save());
      assert.deepEqual(outcomes, [false]);
      assert.equal(backup.health.ok, false);
      assert.equal(backup.health.failures, 1);
      assert.match(backup.health.lastError ?? "", /E[A-Z]+/, "the file system's error");
      const left = (await readdir(directory, { recursive: true })).filter((entry) => String(entry).endsWith(".tmp"));
      assert.deepEqual(left, [], "no temporary file left behind");
    });
  }

  await t.test("the next backup that succeeds clears it", async (t) => {
    const directory = await temporaryDirectory(t);
    const path = join(directory, "backup.json");
    await mkdir(path);
    const outcomes: boolean[] = [];
    const backup = new StoreBackup(path, populatedStore(), silentLogger(), (ok) => outcomes.push(ok));
    await assert.rejects(backup.save());
    await rm(path, { recursive: true });
    await backup.save();
    assert.deepEqual(outcomes, [false, true]);
    assert.equal(backup.health.ok, true);
    assert.equal(backup.health.failures, 1, "failures are counted, not forgotten");
    assert.equal(backup.health.lastError, undefined);
    assert.ok(backup.health.lastSuccessAt !== undefined);
    assert.deepEqual((await readBackup(path)).status, STATUS);
  });

  await t.test("a temporary name taken by someone else's directory is left alone", async (t) => {
    const directory = await temporaryDirectory(t);
    const path = join(directory, "backup.json");
    await mkdir(`${path}.${process.pid}.tmp`);
    await assert.rejects(new StoreBackup(path, populatedStore(), silentLogger()).save());
    assert.ok((await stat(`${path}.${process.pid}.tmp`)).isDirectory());
  });
});

test("restore() uses a backup only when OPA, read back, holds what it says", async (t) => {
  const saved = async (t: TestContext): Promise<string> => {
    const path = join(await temporaryDirectory(t), "backup.json");
    await new StoreBackup(path, populatedStore(), silentLogger()).save();
    return path;
  };

  await t.test("data changed after it was saved: not used, OPA's data emptied again", async (t) => {
    const path = await saved(t);
    const file = await readBackup(path);
    (file.data as { users: Record<string, unknown> }).users = {};
    await writeFile(path, JSON.stringify(file));
    const store = new MemoryStore();
    const outcome = await new StoreBackup(path, store, silentLogger()).restore();
    assert.equal(outcome.used, false);
    assert.match(outcome.problem ?? "", /was not used: its data does not match the checksum/);
    assert.deepEqual(store.data, {}, "no status claims the backup's position");
  });

  await t.test("OPA does not keep what was written", async (t) => {
    const path = await saved(t);
    const store = new MemoryStore();
    const write = store.writeData.bind(store);
    // An OPA that drops part of the root document it was given.
    store.writeData = async (data) => {
      await write(data);
      if (data.path === "/" && isObject(store.data)) delete store.data.users;
    };
    const outcome = await new StoreBackup(path, store, silentLogger()).restore();
    assert.equal(outcome.used, false);
    assert.match(outcome.problem ?? "", /does not hold the data the backup's position says/);
    assert.deepEqual(store.data, {});
  });

  await t.test("OPA does not keep a policy", async (t) => {
    const path = await saved(t);
    const store = new MemoryStore();
    store.putPolicy = async () => undefined;
    const outcome = await new StoreBackup(path, store, silentLogger()).restore();
    assert.equal(outcome.used, false);
    assert.match(outcome.problem ?? "", /does not hold 2 of its policies/);
    assert.equal(await store.readData("/system/opal"), undefined);
  });

  await t.test("OPA refuses the data", async (t) => {
    const path = await saved(t);
    const store = new MemoryStore();
    const write = store.writeData.bind(store);
    store.writeData = async (data) => {
      if (data.path === "/" && data.body !== undefined && data.body.byteLength > 2) throw new Error("request body too large");
      await write(data);
    };
    const outcome = await new StoreBackup(path, store, silentLogger()).restore();
    assert.equal(outcome.used, false);
    assert.match(outcome.problem ?? "", /OPA refused it: request body too large/);
    assert.equal(await store.readData("/system/opal"), undefined);
  });

  await t.test("a backup of an earlier version (no checksum) is checked against its own data and status", async (t) => {
    const path = await saved(t);
    const file = await readBackup(path);
    delete (file as { data_sha256?: string }).data_sha256;
    await writeFile(path, JSON.stringify(file));
    assert.deepEqual(await new StoreBackup(path, new MemoryStore(), silentLogger()).restore(), { used: true });
  });
});
