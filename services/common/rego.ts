/** The `package` declared by a Rego module, or "" when none is found. */
export function regoPackage(rego: string): string {
  const withoutComments = rego.replace(/#.*$/gm, "");
  return /^\s*package\s+([^\s#]+)/m.exec(withoutComments)?.[1] ?? "";
}
