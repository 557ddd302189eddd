import type { DeadLetterReason } from "../errors.js";
import type { TransportEvent } from "../transport/transport.js";

/** Which part of the relay claimed a batch. */
export type ClaimPath = "queue" | "listen" | "sweep";

/** What the relay tells its listeners. */
export type RelayEvent =
  | { type: "started" }
  | { type: "stopped" }
  | { type: "published"; path: ClaimPath; count: number }
  | { type: "retry-scheduled"; messageId: string; attempts: number; delayMs: number; error: Error }
  | { type: "dead-lettered"; messageId: string; attempts: number; error: Error; reason: DeadLetterReason }
  | { type: "batch-failed"; path: ClaimPath; count: number; error: Error }
  | { type: "listen-reconnecting"; attempt: number; delayMs: number; error: Error }
  | { type: "transport"; event: TransportEvent };

export type RelayEventListener = (event: RelayEvent) => void;
