// The inbox's consumer on the in-memory broker: what transport/amqp/consumer.ts is on RabbitMQ, with one channel that
// never drops unless the consumer misuses it.
//
// State machine:
//   idle --start()--> consuming (topology declared, {type: "connected"} emitted)
//   idle --start() fails (a binding to a missing exchange: 404; conflicting declarations: 406)--> closed, rejects
//   consuming --pause()--> paused (no new deliveries; unacked ones may still be acked or rejected)
//   any --close()--> closed: unacked messages go back to the head of the queue, redelivered; their acks return false
// Deliveries carry the channel's generation, as on RabbitMQ: close() ends the generation, so a late ack of an old
// delivery is refused (false) instead of acking someone else's. Acking or rejecting a delivery twice (an unknown
// delivery tag) is what makes RabbitMQ close the channel with 406 PRECONDITION_FAILED: here too the channel "drops"
// (disconnected, every unacked message requeued redelivered, a new generation) and comes back on a later tick
// (connected), as AmqpConsumer reconnects.
// Prefetch is honoured per consumer (never more than `prefetch` unacked; 0 is unlimited, as in AMQP).

import type { BrokerMessage, MemoryQueue, QueueConsumer, QueuedMessage } from "./memory-queue.js";
import type { Consumer, ConsumerOptions, Delivery, DeliveryTag } from "./transport.js";

/** @internal What a consumer needs of its broker. */
export interface ConsumerPort {
  /** Declares the consumer's exchanges, queue and bindings; throws OutboxConfigError as RabbitMQ would refuse them. */
  declare(): MemoryQueue;
  /** A rejected message: to the queue's dead-letter exchange, or dropped. */
  deadLetter(queue: MemoryQueue, message: BrokerMessage): void;
}

type State = "idle" | "consuming" | "paused" | "closed";

export class MemoryConsumer implements Consumer, QueueConsumer {
  readonly #options: ConsumerOptions;
  readonly #port: ConsumerPort;
  #state: State = "idle";
  #queue: MemoryQueue | undefined;
  #generation = 0;
  #nextTag = 1;
  /** deliveryTag => message, in delivery order (a Map keeps insertion order). */
  readonly #unacked = new Map<number, BrokerMessage>();
  /** A dropped channel not yet back (see the top of the module). */
  #reopening = false;

  constructor(options: ConsumerOptions, port: ConsumerPort) {
    this.#options = options;
    this.#port = port;
  }

  get state(): State {
    return this.#state;
  }

  get hasRoom(): boolean {
    const { prefetch } = this.#options;
    return this.#state === "consuming" && !this.#reopening && (prefetch <= 0 || this.#unacked.size < prefetch);
  }

  get unackedCount(): number {
    return this.#unacked.size;
  }

  async start(): Promise<void> {
    if (this.#state !== "idle") throw new Error(`consumer already ${this.#state}`);
    try {
      this.#queue = this.#port.declare();
    } catch (error) {
      this.#state = "closed";
      throw error;
    }
    this.#generation++;
    this.#state = "consuming";
    this.#queue.attach(this);
    this.#options.onEvent({ type: "connected" });
  }

  async pause(): Promise<void> {
    if (this.#state === "consuming") this.#state = "paused";
  }

  ack(delivery: Delivery, multiple = false): boolean {
    if (!this.#current(delivery)) return false;
    const tag = delivery.tag.deliveryTag;
    if (!this.#unacked.has(tag)) {
      this.#channelError(`PRECONDITION_FAILED - unknown delivery tag ${tag} (acked or rejected twice) (406)`);
      return true;
    }
    if (multiple) {
      for (const t of [...this.#unacked.keys()]) if (t <= tag) this.#unacked.delete(t);
    } else this.#unacked.delete(tag);
    this.#queue!.schedule();
    return true;
  }

  reject(delivery: Delivery): boolean {
    if (!this.#current(delivery)) return false;
    const tag = delivery.tag.deliveryTag;
    const message = this.#unacked.get(tag);
    if (message === undefined) {
      this.#channelError(`PRECONDITION_FAILED - unknown delivery tag ${tag} (acked or rejected twice) (406)`);
      return true;
    }
    this.#unacked.delete(tag);
    this.#port.deadLetter(this.#queue!, message);
    this.#queue!.schedule();
    return true;
  }

  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#giveBack();
    this.#queue?.detach(this);
  }

  /** QueueConsumer: one message from the queue, handed to onDelivery. */
  take(entry: QueuedMessage): void {
    const { message, redelivered } = entry;
    const deliveryTag = this.#nextTag++;
    this.#unacked.set(deliveryTag, message);
    const tag: DeliveryTag = { generation: this.#generation, deliveryTag, message: { content: message.content } };
    const delivery: Delivery = {
      content: message.content,
      messageId: message.messageId,
      exchange: message.exchange,
      routingKey: message.routingKey,
      headers: message.headers === undefined ? undefined : { ...message.headers },
      type: message.type,
      correlationId: message.correlationId,
      redelivered,
      tag,
    };
    try {
      this.#options.onDelivery(delivery);
    } catch {
      // onDelivery must not throw (amqplib would lose the connection); the delivery stays unacked.
    }
  }

  #current(delivery: Delivery): boolean {
    return this.#state !== "closed" && !this.#reopening && delivery.tag.generation === this.#generation;
  }

  /** Ends the generation and gives every unacked message back to the head of the queue, redelivered. */
  #giveBack(): void {
    this.#generation++;
    const messages = [...this.#unacked.values()];
    this.#unacked.clear();
    this.#nextTag = 1;
    if (messages.length > 0) this.#queue?.requeue(messages);
  }

  /** RabbitMQ closed the channel for this consumer's error: dropped now, back on a later tick. */
  #channelError(reason: string): void {
    this.#reopening = true;
    this.#giveBack();
    this.#options.onEvent({ type: "disconnected", error: new Error(`channel closed by the broker: ${reason}`) });
    setImmediate(() => {
      this.#reopening = false;
      if (this.#state === "closed") return;
      this.#options.onEvent({ type: "connected" });
      this.#queue!.schedule();
    });
  }
}
