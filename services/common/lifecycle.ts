/**
 * One lifecycle shape for every long-lived component (OPA's plugin manager, nats.js):
 * start(signal), an idempotent stop(), and a supervisor that starts components in
 * dependency order and stops them in reverse under one shutdown deadline.
 */
import type { Logger } from "./logger.js";

export interface Component {
  readonly name: string;
  start(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

export class Supervisor {
  private readonly started: Component[] = [];
  private readonly controller = new AbortController();
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly components: readonly Component[],
    private readonly logger: Logger,
    private readonly shutdownTimeoutMs = 10_000,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  async start(): Promise<void> {
    for (const component of this.components) {
      try {
        await component.start(this.controller.signal);
        this.started.push(component);
      } catch (error) {
        this.logger.error({ err: error, component: component.name }, "start-up failed");
        await this.stop();
        throw error;
      }
    }
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopAll();
    return this.stopping;
  }

  private async stopAll(): Promise<void> {
    this.controller.abort(new Error("shutting down"));
    const deadline = Date.now() + this.shutdownTimeoutMs;
    for (const component of [...this.started].reverse()) {
      const remaining = Math.max(1, deadline - Date.now());
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), remaining);
      });
      try {
        const outcome = await Promise.race([component.stop().then(() => "stopped" as const), timeout]);
        if (outcome === "timeout") this.logger.warn({ component: component.name }, "did not stop before the shutdown deadline");
      } catch (error) {
        this.logger.warn({ err: error, component: component.name }, "stop failed");
      } finally {
        clearTimeout(timer);
      }
    }
  }
}
