/** Keys and tokens for tests of the secured server: real RSA keys, tokens from POST /token. */
import { generateKeyPairSync } from "node:crypto";
import { type Dispatcher, request } from "undici";

export const MASTER_TOKEN = "test-master-token-7c1d0e";

export interface TestKeys {
  privatePem: string;
  publicPem: string;
}

export function rsaKeys(): TestKeys {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), publicPem: publicKey.export({ type: "spki", format: "pem" }).toString() };
}

/** The server's variables for secure mode with these keys. */
export function authEnv(keys: TestKeys): Record<string, string> {
  return { OPAL_AUTH_PRIVATE_KEY: keys.privatePem, OPAL_AUTH_PUBLIC_KEY: keys.publicPem, OPAL_AUTH_MASTER_TOKEN: MASTER_TOKEN };
}

export async function issueToken(serverUrl: string, body: { type: "client" | "datasource" | "listener"; claims?: Record<string, unknown>; ttl?: number | string }, dispatcher?: Dispatcher): Promise<string> {
  const response = await request(`${serverUrl}/token`, {
    method: "POST",
    headers: { authorization: `Bearer ${MASTER_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
    ...(dispatcher === undefined ? {} : { dispatcher }),
  });
  const json = (await response.body.json()) as { token?: string; detail?: unknown };
  if (response.statusCode !== 200 || json.token === undefined) throw new Error(`POST /token: ${response.statusCode} ${JSON.stringify(json)}`);
  return json.token;
}

/** A JSON call with a bearer token; the status and the parsed body. */
export async function call(url: string, options: { method?: "GET" | "POST" | "PUT" | "DELETE"; token?: string; body?: unknown } = {}): Promise<{ status: number; json: unknown }> {
  const response = await request(url, {
    method: options.method ?? "GET",
    headers: { ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }), ...(options.body === undefined ? {} : { "content-type": "application/json" }) },
    body: options.body === undefined ? undefined : typeof options.body === "string" ? options.body : JSON.stringify(options.body),
  });
  const text = await response.body.text();
  let json: unknown = text;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.statusCode, json };
}
