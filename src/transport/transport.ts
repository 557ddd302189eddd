// The broker, as the relay sees it. The relay knows nothing of AMQP; the transport knows nothing of SQL or Prisma.

/** One message on its way to the broker. */
export interface OutboundMessage {
  /** The stable id, sent as the AMQP `messageId`. */
  messageId: string;
  exchange: string;
  routingKey: string;
  body: Buffer;
  headers: Record<string, string | number | boolean | null> | undefined;
  type: string | undefined;
  correlationId: string | undefined;
  /** When the message was written (ms since the epoch); sent as the AMQP `timestamp` (in seconds). */
  createdAt: number;
}

/** What became of one message of a batch. */
export type PublishOutcome = { ok: true } | { ok: false; error: Error };

export interface PublishOptions {
  /** Give up on the whole batch after this long (the relay then rolls back). */
  timeoutMs: number;
  /** Abort the whole batch (e.g. graceful stop past its deadline). */
  signal?: AbortSignal;
}

/** An exchange the relay asserts at start-up. */
export interface ExchangeSpec {
  name: string;
  type: "direct" | "topic" | "fanout" | "headers";
  durable?: boolean;
}

export type TransportEvent =
  | { type: "connected" }
  | { type: "disconnected"; error: Error | undefined }
  | { type: "reconnecting"; attempt: number; delayMs: number; error: Error }
  | { type: "blocked"; reason: string }
  | { type: "unblocked" };

export interface Transport {
  /**
   * Connects (retrying with backoff until it succeeds or `close()` is called) and asserts the configured exchanges.
   * Rejects only on errors that retrying cannot fix, such as an exchange that exists with other settings.
   */
  start(): Promise<void>;
  /**
   * Publishes the batch with publisher confirms and resolves with one outcome per message, in order, once the broker
   * has confirmed or refused every one of them. A message is ok only when the broker acked it and did not return it
   * as unroutable. Rejects (the whole batch counts as not published) when the connection is lost, the batch times
   * out or the signal aborts: some messages may have reached the broker, so the caller must treat them as unsent
   * but possibly delivered (at-least-once).
   */
  publish(messages: OutboundMessage[], options: PublishOptions): Promise<PublishOutcome[]>;
  /** Closes the connection; pending publishes reject. Idempotent. */
  close(): Promise<void>;
  /** Subscribes to connection events; returns the unsubscribe function. Listeners must not throw. */
  onEvent(listener: (event: TransportEvent) => void): () => void;
}
