/**
 * Glob patterns for OPAL_BUNDLE_IGNORE and OPAL_POLICY_STORE_POLICY_PATHS_TO_IGNORE:
 * `*` and `?` stay within one path segment, `**` spans segments, a trailing `/**` also
 * matches the directory itself, and a leading `!` negates (a later match wins).
 */
function globToRegExp(glob: string): RegExp {
  let source = "";
  for (let index = 0; index < glob.length; index++) {
    const char = glob[index] as string;
    if (char === "*") {
      if (glob[index + 1] === "*") {
        index++;
        if (glob[index + 1] === "/") {
          index++;
          source += "(?:.*/)?";
        } else {
          source += ".*";
        }
      } else {
        source += "[^/]*";
      }
    } else if (char === "?") {
      source += "[^/]";
    } else {
      source += char.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
  }
  if (glob.endsWith("/**")) source = `${source.slice(0, -"/.*".length)}(?:/.*)?`;
  return new RegExp(`^${source}$`);
}

export class GlobSet {
  private readonly rules: Array<{ negate: boolean; pattern: RegExp }>;

  constructor(globs: readonly string[]) {
    this.rules = globs
      .map((glob) => glob.trim())
      .filter((glob) => glob !== "")
      .map((glob) => {
        const negate = glob.startsWith("!");
        const body = (negate ? glob.slice(1) : glob).replace(/^\.?\//, "");
        return { negate, pattern: globToRegExp(body) };
      });
  }

  get isEmpty(): boolean {
    return this.rules.length === 0;
  }

  matches(path: string): boolean {
    let matched = false;
    for (const rule of this.rules) {
      if (rule.pattern.test(path)) matched = !rule.negate;
    }
    return matched;
  }
}
