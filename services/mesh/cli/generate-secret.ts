/** `opal-mesh generate-secret`: OPAL's verb, a random secret (for OPAL_AUTH_MASTER_TOKEN and the like). */
import { randomBytes } from "node:crypto";
import { type Command, Option } from "commander";
import type { Env } from "../../common/config/env-reader.js";
import { ExitCode, Terminal, UsageError, runVerb, verbCommand } from "./shared.js";

export const SECRET_FORMATS = ["urlsafe", "hex", "base64", "bytes"] as const;
export type SecretFormat = (typeof SECRET_FORMATS)[number];

/** Python's repr() of a bytes object, as OPAL's `--format bytes` prints it. */
function pythonBytesRepr(bytes: Uint8Array): string {
  // Python quotes with " when the bytes hold ' and no ".
  const quote = bytes.includes(0x27) && !bytes.includes(0x22) ? '"' : "'";
  let body = "";
  for (const byte of bytes) {
    if (byte === 0x5c) body += "\\\\";
    else if (byte === quote.charCodeAt(0)) body += `\\${quote}`;
    else if (byte === 0x09) body += "\\t";
    else if (byte === 0x0a) body += "\\n";
    else if (byte === 0x0d) body += "\\r";
    else if (byte >= 0x20 && byte < 0x7f) body += String.fromCharCode(byte);
    else body += `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return `b${quote}${body}${quote}`;
}

/** OPAL's formats: urlsafe (secrets.token_urlsafe: base64url, no padding), hex, bytes; base64 besides. */
export function formatSecret(bytes: Uint8Array, format: SecretFormat): string {
  const buffer = Buffer.from(bytes);
  switch (format) {
    case "urlsafe":
      return buffer.toString("base64url");
    case "hex":
      return buffer.toString("hex");
    case "base64":
      return buffer.toString("base64");
    case "bytes":
      return pythonBytesRepr(bytes);
  }
}

const MAX_SIZE = 1 << 20;

export function generateSecretCommand(env: Env): Command {
  return verbCommand("generate-secret")
    .description("print a random secret, e.g. for OPAL_AUTH_MASTER_TOKEN (as OPAL's generate-secret)")
    .option("--size <bytes>", "size of the secret in bytes", "32")
    .addOption(new Option("--format <format>", "urlsafe (base64url), hex, base64, or bytes (Python's repr)").choices(SECRET_FORMATS).default("urlsafe"))
    .addHelpText("after", "\nExamples:\n  $ opal-mesh generate-secret\n  $ opal-mesh generate-secret --size 64 --format hex")
    .action(async (flags: { size: string; format: SecretFormat }) => {
      const terminal = new Terminal(env);
      await runVerb("generate-secret", terminal, async () => {
        const size = Number(flags.size);
        if (!/^\d+$/.test(flags.size.trim()) || size < 1 || size > MAX_SIZE) throw new UsageError("--size", `expected a whole number of bytes from 1 to ${MAX_SIZE}, got ${JSON.stringify(flags.size)}`);
        terminal.out(formatSecret(randomBytes(size), flags.format));
        return ExitCode.ok;
      });
    });
}
