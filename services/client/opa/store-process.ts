/**
 * The policy store as one lifecycle part, whether the client runs OPA itself (inline) or
 * reaches one at OPAL_POLICY_STORE_URL: started first (it is waited for until it answers),
 * stopped last (the inline OPA ends, the connection pool closes).
 */
import { type Closed, Closing, type Component } from "../../common/lifecycle.js";
import type { Logger } from "../../common/logger.js";
import type { PolicyStore } from "../policy-store.js";
import { waitForStore } from "../store-watch.js";
import type { InlineOpa } from "./inline-opa.js";

export class StoreProcess implements Component {
  readonly name = "policy-store";
  private readonly closing = new Closing();
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly store: PolicyStore,
    /** The OPA the client runs; undefined for an external one. */
    readonly inline: InlineOpa | undefined,
    private readonly url: string,
    private readonly logger: Logger,
  ) {
    // The inline OPA never ends by itself (it restarts); if it did, so would this part.
    void inline?.closed.then((closed) => {
      if (closed.reason === "failed") this.closing.end(closed);
    });
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  async start(signal: AbortSignal): Promise<void> {
    if (this.inline === undefined) {
      await waitForStore(this.store, this.logger, signal);
      return;
    }
    await this.inline.start(signal);
    this.logger.info({ url: this.url }, "inline OPA is up");
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      try {
        await this.inline?.stop();
      } finally {
        await this.store.close();
        this.closing.stopped();
      }
    })();
    return this.stopping;
  }
}
