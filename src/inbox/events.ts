import type { TransportEvent } from "../transport/transport.js";

/** What the inbox tells its listeners. */
export type InboxEvent =
  | { type: "started" }
  | { type: "stopped" }
  | { type: "received"; deliveries: number; stored: number; duplicates: number }
  | { type: "invalid"; messageId: string | undefined; routingKey: string; reason: string; outcome: "dead" | "rejected" }
  | { type: "handled"; messageId: string; handler: string; attempt: number; durationMs: number }
  | { type: "retry-scheduled"; messageId: string; handler: string; attempt: number; delayMs: number; error: Error }
  | { type: "dead"; messageId: string; handler: string; attempt: number; error: Error }
  | { type: "purged"; count: number }
  | { type: "transport"; event: TransportEvent }
  /** The connection was lost while decoding a frame from the broker, soon after consuming (`failures` in a row). */
  | { type: "decode-failure"; failures: number; error: Error }
  /** The same decoding failure on every reconnection: a message the client cannot decode heads the queue. */
  | { type: "decode-loop"; failures: number; error: Error }
  | { type: "decode-loop-ended" };

export type InboxEventListener = (event: InboxEvent) => void;
