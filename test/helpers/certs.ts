/** A throwaway PKI made with the real openssl: a CA, certificates it signs, and a rogue CA. */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./git-repo.js";

export interface CertFiles {
  cert: string;
  key: string;
}

export class TestPki {
  readonly dir = tempDir("opal-mesh-pki-");
  readonly caCert: string;
  private readonly caKey: string;

  constructor(name = "opal-mesh test CA") {
    this.caKey = join(this.dir, "ca.key");
    this.caCert = join(this.dir, "ca.pem");
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", this.caKey, "-out", this.caCert, "-days", "2", "-subj", `/CN=${name}`);
  }

  /** A certificate for 127.0.0.1 and localhost, usable by servers and clients alike. */
  issue(name: string): CertFiles {
    const key = join(this.dir, `${name}.key`);
    const csr = join(this.dir, `${name}.csr`);
    const cert = join(this.dir, `${name}.pem`);
    const ext = join(this.dir, `${name}.ext`);
    writeFileSync(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${name}`);
    openssl("x509", "-req", "-in", csr, "-CA", this.caCert, "-CAkey", this.caKey, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext);
    return { cert, key };
  }

  get ca(): Buffer {
    return readFileSync(this.caCert);
  }
}

function openssl(...args: string[]): void {
  try {
    execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (error) {
    throw new Error(`openssl ${args[0]} failed (the TLS tests need the openssl command; on Debian: apt-get install openssl): ${(error as Error).message}`, { cause: error });
  }
}

/** undici connect options for a client presenting these files. */
export function tlsOptions(ca: string, files?: CertFiles): { ca: Buffer; cert?: Buffer; key?: Buffer } {
  return { ca: readFileSync(ca), ...(files === undefined ? {} : { cert: readFileSync(files.cert), key: readFileSync(files.key) }) };
}
