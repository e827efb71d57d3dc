/**
 * A process's security: verifies tokens (when keys are configured), signs them (servers
 * with the private key: `POST /token`, and the service tokens its processes show each
 * other), publishes the JWKS. Key import is asynchronous; everything here waits for it.
 */
import { createContextKey, type Interceptor } from "@connectrpc/connect";
import type { AuthConfig } from "../config/auth-config.js";
import { Authenticator } from "./authenticator.js";
import { type PeerType, type Principal, TokenSigner, TokenVerifier } from "./tokens.js";

/** The caller, as the auth interceptor established it (read by handlers). */
export const PRINCIPAL = createContextKey<Principal | undefined>(undefined, { description: "the authenticated caller" });

export class Security {
  private readonly ready: Promise<{ authenticator: Authenticator; signer: TokenSigner | undefined; verifier: TokenVerifier | undefined }>;
  private serviceToken: { token: string; refreshAt: number } | undefined;

  constructor(private readonly config: AuthConfig) {
    this.ready = (async () => {
      const audience = { audience: config.audience, issuer: config.issuer };
      const verifier = config.publicKeys.length > 0 ? await TokenVerifier.create(config.publicKeys, audience) : undefined;
      const signer = config.privateKey !== undefined ? await TokenSigner.create(config.privateKey, audience) : undefined;
      return { authenticator: new Authenticator(verifier, config.masterToken), signer, verifier };
    })();
  }

  /** No public key: every check passes (and the server says so in its health). */
  get devMode(): boolean {
    return this.config.publicKeys.length === 0;
  }

  async authenticator(): Promise<Authenticator> {
    return (await this.ready).authenticator;
  }

  /** Throws AuthError when the caller may not use the scope (see Authenticator.authorizeScope). */
  readonly authorizeScope = async (principal: Principal | undefined, scope: string): Promise<void> => {
    if (principal !== undefined) (await this.authenticator()).authorizeScope(principal, scope);
  };

  async jwks(): Promise<{ keys: unknown[] }> {
    return (await this.ready).verifier?.jwks ?? { keys: [] };
  }

  async issue(request: { peerType: PeerType; id?: string; ttlSeconds: number; claims?: Record<string, unknown> }): Promise<{ token: string; id: string; expiresAt: Date } | undefined> {
    return (await this.ready).signer?.sign(request);
  }

  /** The token this process shows other opal-mesh processes (none in dev mode). */
  async serviceAuthorization(): Promise<string | undefined> {
    const signer = (await this.ready).signer;
    if (signer === undefined) return undefined;
    if (this.serviceToken === undefined || Date.now() > this.serviceToken.refreshAt) {
      const { token } = await signer.sign({ peerType: "service", ttlSeconds: 3_600 });
      this.serviceToken = { token, refreshAt: Date.now() + 1_800_000 };
    }
    return `Bearer ${this.serviceToken.token}`;
  }

  /** Client-side interceptor: adds this process's service token to every call. */
  serviceInterceptor(): Interceptor {
    return (next) => async (request) => {
      const authorization = await this.serviceAuthorization();
      if (authorization !== undefined && !request.header.has("authorization")) request.header.set("authorization", authorization);
      return next(request);
    };
  }
}
