// One queue of the in-memory broker: the messages waiting in it, and handing them to its consumers as RabbitMQ does.
//
// A message is either ready (in `ready`, in order) or unacked (held by the consumer it was delivered to, which gives
// it back with requeue() when it closes). Dispatch runs on a later tick than whatever made a message ready or freed
// a consumer's prefetch (setImmediate, never inside publish() or ack()), and hands out as many as the consumers'
// prefetch allows, round robin: each message goes to the next consumer after the one that got the previous message
// that has room, as RabbitMQ spreads a queue over its consumers.

/** What a queue holds and a consumer gets. */
export interface BrokerMessage {
  content: Buffer;
  messageId: string | undefined;
  /** The exchange it was published to ("" for the default exchange; the dead-letter exchange once dead-lettered). */
  exchange: string;
  routingKey: string;
  headers: Record<string, unknown> | undefined;
  type: string | undefined;
  correlationId: string | undefined;
  /** ms since the epoch; RabbitMQ carries seconds, so a published timestamp is whole seconds. */
  timestamp: number | undefined;
}

/** A message in a queue, and whether it was delivered before (and given back). */
export interface QueuedMessage {
  readonly message: BrokerMessage;
  readonly redelivered: boolean;
}

/** @internal What a queue needs of a consumer. */
export interface QueueConsumer {
  /** Whether it takes a message now (consuming, and below its prefetch). */
  readonly hasRoom: boolean;
  /** Its unacked messages. */
  readonly unackedCount: number;
  /** Takes one message (the consumer calls its onDelivery). */
  take(entry: QueuedMessage): void;
}

/** @internal Held by MemoryBroker. */
export class MemoryQueue {
  readonly ready: QueuedMessage[] = [];
  readonly #consumers: QueueConsumer[] = [];
  /** Index in #consumers of the next consumer to try (round robin). */
  #next = 0;
  #scheduled = false;

  constructor(
    readonly name: string,
    readonly args: Readonly<Record<string, unknown>>,
  ) {}

  get unacked(): number {
    return this.#consumers.reduce((sum, c) => sum + c.unackedCount, 0);
  }

  get consumers(): number {
    return this.#consumers.length;
  }

  enqueue(message: BrokerMessage): void {
    this.ready.push({ message, redelivered: false });
    this.schedule();
  }

  /** Messages given back by a consumer: at the head of the queue, in their order, marked redelivered. */
  requeue(messages: readonly BrokerMessage[]): void {
    this.ready.unshift(...messages.map((message) => ({ message, redelivered: true })));
    this.schedule();
  }

  attach(consumer: QueueConsumer): void {
    this.#consumers.push(consumer);
    this.schedule();
  }

  detach(consumer: QueueConsumer): void {
    const index = this.#consumers.indexOf(consumer);
    if (index < 0) return;
    this.#consumers.splice(index, 1);
    if (this.#next > index) this.#next--;
    this.schedule();
  }

  /** Dispatch on a later tick (once, however many calls come before it). */
  schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#dispatch();
    });
  }

  #dispatch(): void {
    while (this.ready.length > 0) {
      const consumer = this.#nextWithRoom();
      if (!consumer) return;
      consumer.take(this.ready.shift()!);
    }
  }

  #nextWithRoom(): QueueConsumer | undefined {
    const count = this.#consumers.length;
    for (let i = 0; i < count; i++) {
      const index = (this.#next + i) % count;
      const consumer = this.#consumers[index]!;
      if (consumer.hasRoom) {
        this.#next = (index + 1) % count;
        return consumer;
      }
    }
    return undefined;
  }
}
