/** The IPC messages between a scenario and its load-generator process (bench/load/ack-fleet.ts). */

export interface AckLoadStats {
  clients: number;
  /** HTTP/2 connections the clients are spread over. */
  connections: number;
  /** Streams welcomed and still open. */
  connected: number;
  welcomes: number;
  /** Welcomes that accepted the client's resume position (same log). */
  resumed: number;
  /** Welcomes that started the client from the head (first connect, or another log). */
  fresh: number;
  resyncs: number;
  events: number;
  /** Events at or below a position the client already had (at-least-once repeats). */
  duplicates: number;
  /** Positions skipped within one log: events lost. */
  lost: number;
  clientsWithLoss: number;
  /** Streams that broke (errors and ends). */
  failures: number;
  /** Why streams broke, counted. */
  errors: Record<string, number>;
  minPosition: number;
  maxPosition: number;
  logIds: string[];
}

export type AckLoadRequest = { type: "stats" } | { type: "stop" };

export type AckLoadReport =
  | { type: "stats"; stats: AckLoadStats }
  | { type: "stopped"; stats: AckLoadStats }
  /** Every client received `position` (first receipt each); wall-clock ms (timeOrigin + now). */
  | {
      type: "delivered";
      logId: string;
      position: number;
      firstAt: number;
      medianAt: number;
      lastAt: number;
      /** The longest any client took from the Welcome of its current stream to this position (its catch-up). */
      maxSinceWelcome: number;
      /** The latest Welcome among the clients' current streams (the last one back after a break). */
      lastWelcomeAt: number;
    };
