/**
 * TLS material from files named by variables. Servers: a certificate and key for every
 * listener, and a CA that client certificates must chain to (mTLS) when given. Clients:
 * the CA that server certificates chain to, and their own certificate for mTLS.
 */
import { readFileSync } from "node:fs";
import type { EnvReader } from "./env-reader.js";

export interface ServerTls {
  cert: Buffer;
  key: Buffer;
  /** When set, clients must present a certificate signed by it. */
  clientCa: Buffer | undefined;
}

export interface ClientTls {
  ca: Buffer | undefined;
  cert: Buffer | undefined;
  key: Buffer | undefined;
}

function file(env: EnvReader, name: string): Buffer | undefined {
  const path = env.optionalString(name);
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    env.problem(name, `cannot read ${path}: ${(error as Error).message}`);
    return undefined;
  }
}

export function readServerTls(env: EnvReader): ServerTls | undefined {
  const cert = file(env, "OPAL_MESH_TLS_CERT_FILE");
  const key = file(env, "OPAL_MESH_TLS_KEY_FILE");
  const clientCa = file(env, "OPAL_MESH_TLS_CLIENT_CA_FILE");
  if ((cert === undefined) !== (key === undefined)) env.problem(cert === undefined ? "OPAL_MESH_TLS_CERT_FILE" : "OPAL_MESH_TLS_KEY_FILE", "TLS needs both OPAL_MESH_TLS_CERT_FILE and OPAL_MESH_TLS_KEY_FILE");
  if (clientCa !== undefined && cert === undefined) env.problem("OPAL_MESH_TLS_CLIENT_CA_FILE", "mTLS needs the server's own certificate too (OPAL_MESH_TLS_CERT_FILE)");
  return cert !== undefined && key !== undefined ? { cert, key, clientCa } : undefined;
}

/** How a process reaches other processes over https: a CA, and (for mTLS) a certificate. */
export function readClientTls(env: EnvReader, names: { ca: string; cert: string; key: string }): ClientTls {
  const tls = { ca: file(env, names.ca), cert: file(env, names.cert), key: file(env, names.key) };
  if ((tls.cert === undefined) !== (tls.key === undefined)) env.problem(tls.cert === undefined ? names.cert : names.key, `a client certificate needs both ${names.cert} and ${names.key}`);
  return tls;
}
