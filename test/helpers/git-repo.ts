/** A real git repository in a temp dir, for policy tests. */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export class GitRepo {
  readonly dir = mkdtempSync(join(tmpdir(), "opal-mesh-repo-"));

  constructor(readonly branch = "main") {
    this.git("init", "-q", "-b", branch);
  }

  git(...args: string[]): string {
    return execFileSync("git", ["-c", "user.email=test@opal-mesh", "-c", "user.name=test", ...args], { cwd: this.dir, encoding: "utf8" }).trim();
  }

  /** Writes (string) or deletes (null) files, commits them, and returns the commit sha. */
  commit(files: Record<string, string | null>, message = "change"): string {
    for (const [path, content] of Object.entries(files)) {
      const full = join(this.dir, path);
      if (content === null) {
        rmSync(full, { force: true });
      } else {
        mkdirSync(dirname(full), { recursive: true });
        writeFileSync(full, content);
      }
    }
    this.git("add", "-A");
    this.git("commit", "-q", "--allow-empty", "-m", message);
    return this.head();
  }

  head(): string {
    return this.git("rev-parse", "HEAD");
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
