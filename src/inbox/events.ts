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
  | { type: "transport"; event: TransportEvent };

export type InboxEventListener = (event: InboxEvent) => void;

/** Calls each listener; one that throws can never break the inbox. */
export function safeEmitInbox(listeners: Iterable<InboxEventListener>, event: InboxEvent): void {
  for (const listener of listeners) {
    try {
      listener(event);
    } catch {
      // a listener's failure is its own
    }
  }
}
