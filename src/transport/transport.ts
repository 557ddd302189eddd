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
  /**
   * The time the message has left to live, in ms, for a message with an expiry: sent as the AMQP `expiration`, after
   * which RabbitMQ drops it from a queue (or dead-letters it with the queue's dead-letter exchange). The in-memory
   * transport ignores it.
   */
  expiration?: number;
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
  /**
   * Optional: the relay's `exchanges` option, given before start() to a transport the relay did not make (it makes
   * an AmqpTransport with them), so that start() asserts them too. The test kit's broker transport takes them.
   */
  useExchanges?(exchanges: readonly ExchangeSpec[]): void;
}

// The receiving side: what the inbox consumes through. RabbitMQ's is transport/amqp/consumer.ts; the test kit's
// in-memory broker makes another.

/** The queue the inbox consumes, asserted with its bindings at start and after every reconnection. */
export interface QueueSpec {
  /** The queue's name. */
  name: string;
  /**
   * Queue arguments, e.g. `{ "x-queue-type": "quorum", "x-dead-letter-exchange": "dlx" }`.
   * @defaultValue {}
   */
  arguments?: Record<string, unknown>;
  /**
   * Exchange + routing key pattern pairs to bind; `arguments` for a headers exchange (`x-match` and the headers).
   * @defaultValue []
   */
  bindings?: Array<{ exchange: string; routingKey: string; arguments?: Record<string, unknown> }>;
}

/** One delivery, with what the inbox stores of it. */
export interface Delivery {
  content: Buffer;
  messageId: string | undefined;
  exchange: string;
  routingKey: string;
  headers: Record<string, unknown> | undefined;
  type: string | undefined;
  correlationId: string | undefined;
  redelivered: boolean;
  /**
   * Set when the header table could not be decoded (nested too deep, malformed): `headers` is then undefined, and this
   * says why. The inbox treats such a delivery as invalid (`invalidMessages`).
   */
  undecodable?: string;
  /** @internal What the consumer that made it needs to ack or reject it. */
  readonly tag: DeliveryTag;
}

/** @internal The channel generation and delivery tag; `message` is the consumer's own record of the delivery. */
export interface DeliveryTag {
  readonly generation: number;
  readonly deliveryTag: number;
  readonly message: { content: Buffer };
}

/** What only a consumer reports, besides the transport's connection events. */
export type ConsumerEvent =
  | { type: "decode-failure"; failures: number; error: Error }
  | { type: "decode-loop"; failures: number; error: Error }
  | { type: "decode-loop-ended" }
  | { type: "guard-unavailable" };

export interface ConsumerOptions {
  queue: QueueSpec;
  /** Exchanges to assert before the queue's bindings. */
  exchanges: ExchangeSpec[];
  /** Most deliveries unacked at once. */
  prefetch: number;
  onDelivery: (delivery: Delivery) => void;
  onEvent: (event: TransportEvent | ConsumerEvent) => void;
}

/**
 * Consumes one queue. State machine: idle --start()--> consuming --pause()--> paused; any --close()--> closed. A
 * delivery is acked or rejected once; ack/reject return false when the delivery's channel is gone (the broker
 * delivers it again).
 */
export interface Consumer {
  /** Asserts the topology and starts consuming. Rejects, with nothing left open, if the first try fails. */
  start(): Promise<void>;
  /** Stops new deliveries; deliveries already received may still be acked. */
  pause(): Promise<void>;
  /** Acks the delivery (and, with `multiple`, every earlier one of its channel). */
  ack(delivery: Delivery, multiple?: boolean): boolean;
  /** Rejects without requeue: the queue's dead-letter exchange gets it, or the broker drops it. */
  reject(delivery: Delivery): boolean;
  /** Idempotent. */
  close(): Promise<void>;
}

/** Where an inbox receives from instead of RabbitMQ at `amqpUrl` (the test kit's `MemoryBroker` is one). */
export interface InboxTransport {
  consumer(options: ConsumerOptions): Consumer;
}
