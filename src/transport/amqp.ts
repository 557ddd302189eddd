// The RabbitMQ transport: one connection, one confirm channel, a confirm per message. This module is the facade;
// each job has its module, with its state machine at its top:
//
//   amqp/options.ts       validation of the options, and the scrubber that keeps the password out of every error
//   amqp/connection.ts    the connection state machine: connect, reconnect with backoff, blocked, close
//   amqp/exchanges.ts     asserting the configured exchanges; the cache of which others exist
//   amqp/channel.ts       the confirm channel's lifecycle: confirms, returns, drain, close
//   amqp/publish.ts       one batch: waiting for a connection, flow control, sending, its deadline
//   amqp/header-guard.ts  a header table amqplib cannot decode is one bad delivery, not a dead connection
//   amqp/consumer.ts      the inbox's side: consuming a queue, with its own connection
//   amqp/helpers.ts       small shared pieces
//
// Guarantees, in short (details in the modules): publish() resolves with one outcome per message once the broker
// confirmed or refused each of them, and rejects when the batch's fate is unknown (connection or channel lost,
// timeout, abort, close); the password of the URL never appears in an error or event; close() never hangs on a dead
// network.
import { OutboxPublishError } from "../errors.js";
import { AmqpConnection, type AmqpTransportState } from "./amqp/connection.js";
import { type AmqpTransportOptions, resolveAmqpOptions, type Scrubber } from "./amqp/options.js";
import { type Batch, publishBatch } from "./amqp/publish.js";
import type { OutboundMessage, PublishOptions, PublishOutcome, Transport, TransportEvent } from "./transport.js";

export { redactUrl } from "../config/redact.js";
export type { AmqpTransportState } from "./amqp/connection.js";
export type { AmqpReconnectOptions, AmqpTransportOptions } from "./amqp/options.js";

export class AmqpTransport implements Transport {
  readonly #connection: AmqpConnection;
  readonly #scrubber: Scrubber;
  /** Every publish() in flight, to abort on close(). */
  readonly #batches = new Set<Batch>();
  #closing: Promise<void> | undefined;

  constructor(options: AmqpTransportOptions) {
    const resolved = resolveAmqpOptions(options);
    this.#scrubber = resolved.scrubber;
    this.#connection = new AmqpConnection(resolved);
  }

  get state(): AmqpTransportState {
    return this.#connection.state;
  }

  start(): Promise<void> {
    return this.#connection.start();
  }

  publish(messages: OutboundMessage[], options: PublishOptions): Promise<PublishOutcome[]> {
    return publishBatch(this.#connection, this.#scrubber, this.#batches, messages, options);
  }

  close(): Promise<void> {
    this.#closing ??= this.#connection.close(() => {
      const error = new OutboxPublishError("transport closed", { reason: "closed" });
      for (const batch of this.#batches) batch.abort(error);
    });
    return this.#closing;
  }

  onEvent(listener: (event: TransportEvent) => void): () => void {
    return this.#connection.onEvent(listener);
  }
}
