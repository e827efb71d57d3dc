/**
 * OPAL_FETCH_URL_ALLOWLIST: where data sources may be fetched from, so a datasource token
 * cannot make every client fetch an internal address. Each rule is a URL prefix
 * ("https://api.example.com/v1/", "postgresql://db.internal/") or a host name
 * ("api.example.com", "*.example.com" for its subdomains). Empty: anything goes.
 */
export class UrlAllowlist {
  private readonly prefixes: URL[] = [];
  private readonly hosts: string[] = [];
  private readonly suffixes: string[] = [];

  constructor(readonly rules: readonly string[]) {
    for (const rule of rules) {
      if (rule.includes("://")) this.prefixes.push(new URL(rule));
      else if (rule.startsWith("*.")) this.suffixes.push(rule.slice(1).toLowerCase());
      else this.hosts.push(rule.toLowerCase());
    }
  }

  /** A rule that is not a URL prefix or a host name, or undefined when all are fine. */
  static problem(rule: string): string | undefined {
    if (rule.includes("://")) {
      try {
        new URL(rule);
        return undefined;
      } catch {
        return `${JSON.stringify(rule)} is not a URL`;
      }
    }
    return /^(\*\.)?[a-z0-9.-]+(:\d+)?$/i.test(rule) ? undefined : `${JSON.stringify(rule)} is neither a URL prefix nor a host name`;
  }

  get isEmpty(): boolean {
    return this.rules.length === 0;
  }

  allows(url: string): boolean {
    if (this.isEmpty) return true;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return false;
    }
    const host = parsed.hostname.toLowerCase();
    if (this.hosts.includes(host) || this.hosts.includes(parsed.host.toLowerCase())) return true;
    if (this.suffixes.some((suffix) => host.endsWith(suffix))) return true;
    // A prefix matches on scheme, host and port exactly, and on whole path segments.
    return this.prefixes.some((prefix) => {
      if (prefix.protocol !== parsed.protocol || prefix.host.toLowerCase() !== parsed.host.toLowerCase()) return false;
      const base = prefix.pathname.endsWith("/") ? prefix.pathname : `${prefix.pathname}/`;
      return parsed.pathname === prefix.pathname || parsed.pathname.startsWith(base) || prefix.pathname === "/";
    });
  }
}
