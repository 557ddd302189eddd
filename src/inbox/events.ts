import type { DeadLetterReason } from "../errors.js";
import type { TransportEvent } from "../transport/transport.js";

/** What the inbox tells its listeners. The relay's words where the concept is the same (relay/events.ts). */
export type InboxEvent =
  | { type: "started" }
  | { type: "stopped" }
  | { type: "received"; deliveries: number; stored: number; duplicates: number }
  | { type: "invalid"; messageId: string | undefined; routingKey: string; reason: string; outcome: "dead" | "rejected" }
  | {
      type: "handled";
      messageId: string;
      handler: string;
      /** Attempts started, this one included. */
      attempts: number;
      /** @deprecated The same as `attempts`; removed in the next release. */
      attempt: number;
      durationMs: number;
    }
  | {
      type: "retry-scheduled";
      messageId: string;
      handler: string;
      attempts: number;
      /** @deprecated The same as `attempts`; removed in the next release. */
      attempt: number;
      delayMs: number;
      error: Error;
    }
  /**
   * The message is dead for this handler: its last attempt failed, or every attempt started and none finished
   * (reason "attempts"), its handler threw an error no retry fixes ("non-retryable"), or it expired before it was
   * handled ("expired").
   */
  | {
      type: "dead-lettered";
      messageId: string;
      handler: string;
      attempts: number;
      error: Error;
      reason: DeadLetterReason;
    }
  /**
   * @deprecated Emitted right after `dead-lettered`, with the same fields, for the listeners of the old name; listen
   * to `dead-lettered` (the relay's name). Removed in the next release.
   */
  | {
      type: "dead";
      messageId: string;
      handler: string;
      attempts: number;
      /** @deprecated The same as `attempts`. */
      attempt: number;
      error: Error;
    }
  | { type: "purged"; count: number }
  | { type: "transport"; event: TransportEvent }
  /** The connection was lost while decoding a frame from the broker, soon after consuming (`failures` in a row). */
  | { type: "decode-failure"; failures: number; error: Error }
  /** The same decoding failure on every reconnection: a message the client cannot decode heads the queue. */
  | { type: "decode-loop"; failures: number; error: Error }
  | { type: "decode-loop-ended" };

export type InboxEventListener = (event: InboxEvent) => void;
