// The in-process hand-off from the write side to a relay in the same process.
//
// States of the queue:
//   detached  ids are kept (up to maxPending) until a consumer attaches; nothing runs.
//   idle      a consumer is attached and no ids wait.
//   draining  ids wait or batches run; p-queue runs at most `concurrency` batches at once and holds at most one
//             more in its queue. A batch takes its ids when it starts, not when it is scheduled, so under load ids
//             gather into full batches and when quiet a lone id starts a batch of one at once.
// The queue is a latency optimisation, never a source of truth: every id is also a row in the outbox table. When
// full, new ids are dropped (counted in `dropped`) and the relay's sweeper or a LISTENing relay publishes them.
import PQueue from "p-queue";
import { integerOption, rejectUnknownKeys } from "../config/validate.js";
import { OutboxConfigError } from "../errors.js";

type BatchConsumer = (ids: string[]) => Promise<void>;

export interface OutboxQueueOptions {
  /**
   * Most ids held while waiting for a batch; beyond it new ids are dropped.
   * @defaultValue 10_000
   */
  maxPending?: number;
  /**
   * Batches run at once (each holds one database connection of the relay while it waits for the broker's confirms).
   * @defaultValue 4
   */
  concurrency?: number;
  /**
   * Most ids in one batch.
   * @defaultValue 500
   */
  batchSize?: number;
}

const QUEUE_OPTION_KEYS = { maxPending: true, concurrency: true, batchSize: true } satisfies Record<
  keyof OutboxQueueOptions,
  true
>;

export class OutboxQueue {
  readonly maxPending: number;
  readonly batchSize: number;
  readonly concurrency: number;
  #ids: string[] = [];
  #queue: PQueue;
  #consumer: BatchConsumer | undefined;
  #dropped = 0;
  #onError: (error: unknown) => void = () => {};

  constructor(options: OutboxQueueOptions = {}) {
    rejectUnknownKeys("new OutboxQueue()", options, Object.keys(QUEUE_OPTION_KEYS));
    this.maxPending = integerOption("maxPending", options.maxPending, 10_000, 1);
    this.batchSize = integerOption("batchSize", options.batchSize, 500, 1);
    this.concurrency = integerOption("concurrency", options.concurrency, 4, 1);
    this.#queue = new PQueue({ concurrency: this.concurrency });
  }

  /** Ids dropped so far because the queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Whether a relay is attached (one per queue). */
  get attached(): boolean {
    return this.#consumer !== undefined;
  }

  /** Ids waiting for a batch. */
  get pending(): number {
    return this.#ids.length;
  }

  /** Hands committed message ids over. Never throws and never blocks the writer. */
  push(ids: readonly string[]): void {
    const room = this.maxPending - this.#ids.length;
    if (ids.length > room) {
      this.#dropped += ids.length - Math.max(room, 0);
      ids = ids.slice(0, Math.max(room, 0));
    }
    for (const id of ids) this.#ids.push(id);
    this.#schedule();
  }

  /**
   * Attaches the one consumer (the publisher of an in-process relay); returns the function that detaches it.
   * `onError` hears what the consumer throws; the queue goes on.
   */
  attach(consumer: BatchConsumer, onError: (error: unknown) => void = () => {}): () => Promise<void> {
    if (this.#consumer) {
      throw new OutboxConfigError("This outbox queue already has a relay attached; start one relay per queue.");
    }
    this.#consumer = consumer;
    this.#onError = onError;
    this.#schedule();
    return async () => {
      if (this.#consumer !== consumer) return;
      this.#consumer = undefined;
      await this.#queue.onIdle();
    };
  }

  /** Resolves when no batch is running or scheduled. */
  onIdle(): Promise<void> {
    return this.#queue.onIdle();
  }

  #schedule(): void {
    if (!this.#consumer || this.#ids.length === 0 || this.#queue.size > 0) return;
    void this.#queue.add(() => this.#runBatch());
  }

  async #runBatch(): Promise<void> {
    const consumer = this.#consumer;
    if (!consumer) return; // detached while scheduled: the ids wait for the next consumer
    const ids = this.#ids.splice(0, this.batchSize);
    // The next batch is scheduled before this one runs, so that it can start as soon as a slot frees.
    this.#schedule();
    if (ids.length === 0) return;
    try {
      await consumer(ids);
    } catch (error) {
      try {
        this.#onError(error);
      } catch {
        // a listener must never break the queue
      }
    }
  }
}

/** The queue `outbox()` and `createRelay()` share unless given another. */
export const defaultOutboxQueue = new OutboxQueue();
