// The consuming side under test: the app's own inbox, started on the in-memory broker, handling what a test delivers
// through its real path: stored before the ack, deduplicated, the handler run in the app's Prisma transaction,
// retried with backoff, dead after the last attempt. A test awaits the outcome instead of sleeping: a message is
// settled when each of its rows is processed, dead, or waits for a retry the inbox has scheduled (advance the clock).
import type pg from "pg";
import { resolveDatabase } from "../config/database.js";
import { durationOption, rejectUnknownKeys } from "../config/validate.js";
import { OutboxConfigError, OutboxExpectationError } from "../errors.js";
import type { InboxEvent } from "../inbox/events.js";
import { type Inbox, isInbox } from "../inbox/inbox.js";
import { ORDERING_KEY_HEADER } from "../message/message.js";
import { uuidv7 } from "../message/uuid.js";
import { sleep } from "../runtime/backoff.js";
import { type OwnedPool, openPool } from "../runtime/pg.js";
import { inboxNames } from "../sql/names.js";
import { type InboxStateRow, inboxHoldsSql, inboxStateSql } from "../sql/testing/state.js";
import { type BrokerMessage, MemoryBroker } from "../transport/memory-broker.js";
import type { TestClock } from "./clock.js";
import type { CapturedMessage } from "./match.js";

export interface InboxHarnessOptions {
  /** The app's database, holding the inbox table. Give this or `database`. */
  databaseUrl?: string;
  /** A pg config, or the app's pg.Pool (borrowed, never ended). */
  database?: pg.PoolConfig | pg.Pool;
  /** Where the inbox consumes; share it with an outbox harness to run both sides in one process. @defaultValue a new one */
  broker?: MemoryBroker;
  /** The test clock: retries and leases move with it instead of waiting. */
  clock?: TestClock;
  /** How long deliver() and settled() wait. @defaultValue 5_000 */
  timeoutMs?: number;
}

const OPTION_KEYS = {
  databaseUrl: true,
  database: true,
  broker: true,
  clock: true,
  timeoutMs: true,
} satisfies Record<keyof InboxHarnessOptions, true>;

/** A message to deliver: what a publisher sets. */
export interface DeliveryInput {
  routingKey: string;
  /** An object or array is sent as JSON; a string or Buffer as it is (to test what other publishers send). */
  payload?: unknown;
  /** @defaultValue a new UUIDv7; give the same one twice to deliver a duplicate */
  messageId?: string;
  /** @defaultValue the exchange of the inbox queue's first binding ("" when it has none) */
  exchange?: string;
  /** The ordering key (`x-ordering-key` header). */
  key?: string;
  headers?: Record<string, unknown>;
  type?: string;
  correlationId?: string;
}

/** Where one message stands for one handler. */
export interface HandlerOutcome {
  /** The handler's name ("" for a delivery no handler could take, stored dead). */
  handler: string;
  /** `retrying`: the last attempt failed and a retry is scheduled (advance the test clock to run it). */
  status: "processed" | "retrying" | "dead";
  /** Attempts started. */
  attempts: number;
  /** The last attempt's error, if it failed. */
  error: string | undefined;
  /** When the next attempt may run (status `retrying`). */
  nextAttemptAt: Date | undefined;
}

/** What became of one delivered message. */
export interface DeliveryOutcome {
  messageId: string;
  /** The inbox held this message id before this delivery: it was dropped, as in production. */
  duplicate: boolean;
  /** Why the inbox found it invalid (stored dead, or rejected with `invalidMessages: "reject"`), if it did. */
  invalid: string | undefined;
  /** One per handler that took it, in handler-name order. */
  handlers: HandlerOutcome[];
}

export class InboxHarness {
  readonly broker: MemoryBroker;
  readonly inbox: Inbox;
  readonly #pool: OwnedPool;
  readonly #sql: { state: string; holds: string };
  readonly #timeoutMs: number;
  readonly #exchange: string;
  /** Message ids this harness waits on: delivered here, or routed to the inbox's queue by a relay. */
  readonly #tracked = new Map<string, { duplicate: boolean }>();
  /** The last retry each (message id, handler) was given: a pending row is settled only at that attempt count. */
  readonly #retries = new Map<string, number>();
  readonly #invalid = new Map<string, string>();
  #wake: (() => void) | undefined;
  readonly #unsubscribe: Array<() => void>;

  /** @internal Made by startInboxHarness(). */
  constructor(parts: {
    broker: MemoryBroker;
    inbox: Inbox;
    pool: OwnedPool;
    sql: { state: string; holds: string };
    timeoutMs: number;
    exchange: string;
  }) {
    this.broker = parts.broker;
    this.inbox = parts.inbox;
    this.#pool = parts.pool;
    this.#sql = parts.sql;
    this.#timeoutMs = parts.timeoutMs;
    this.#exchange = parts.exchange;
    this.#unsubscribe = [
      parts.inbox.onEvent((event) => this.#onEvent(event)),
      parts.broker.onPublish(({ message, queues }) => {
        if (message.messageId !== undefined && queues.includes(parts.inbox.queue)) {
          if (!this.#tracked.has(message.messageId)) this.#tracked.set(message.messageId, { duplicate: false });
        }
      }),
    ];
  }

  /**
   * Delivers messages to the inbox's queue (through the exchange and the queue's bindings, as RabbitMQ would) and
   * waits until each is settled. Takes what a test builds, or the messages an outbox harness captured.
   */
  async deliver(input: DeliveryInput | CapturedMessage): Promise<DeliveryOutcome>;
  async deliver(inputs: Array<DeliveryInput | CapturedMessage>): Promise<DeliveryOutcome[]>;
  async deliver(
    input: DeliveryInput | CapturedMessage | Array<DeliveryInput | CapturedMessage>,
  ): Promise<DeliveryOutcome | DeliveryOutcome[]> {
    const inputs = Array.isArray(input) ? input : [input];
    const ids: string[] = [];
    for (const one of inputs) {
      const message = this.#message(one);
      const id = message.messageId!;
      const held = (await this.#pool.pool.query<{ held: boolean }>(this.#sql.holds, [id])).rows[0]!.held;
      this.#send(message);
      this.#tracked.set(id, { duplicate: held });
      ids.push(id);
    }
    const outcomes = await this.#settle(ids);
    return Array.isArray(input) ? outcomes : outcomes[0]!;
  }

  /**
   * Waits until these messages (by id; default: every message delivered or routed to the inbox so far) are settled,
   * and returns their outcomes.
   */
  settled(messageIds?: string | string[]): Promise<DeliveryOutcome[]> {
    const ids = messageIds === undefined ? [...this.#tracked.keys()] : [messageIds].flat();
    return this.#settle(ids);
  }

  /** Where a message stands now (no waiting). */
  async outcome(messageId: string): Promise<DeliveryOutcome> {
    const rows = (await this.#pool.pool.query<InboxStateRow>(this.#sql.state, [[messageId]])).rows;
    return this.#outcome(messageId, rows);
  }

  /** Stops the inbox and closes the harness's connections (the app's pool, if given, is left open). */
  async stop(): Promise<void> {
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    await this.inbox.stop();
    await this.#pool.close().catch(() => {});
  }

  #message(input: DeliveryInput | CapturedMessage): BrokerMessage {
    if (typeof input !== "object" || input === null || typeof input.routingKey !== "string") {
      throw new OutboxConfigError("Expected deliver() to get { routingKey, payload, ... } (or an array of them).");
    }
    const headers: Record<string, unknown> = { ...input.headers };
    if (input.key !== undefined) headers[ORDERING_KEY_HEADER] = input.key;
    const { payload } = input;
    const content = Buffer.isBuffer(payload)
      ? payload
      : Buffer.from(typeof payload === "string" ? payload : (JSON.stringify(payload ?? null) ?? "null"));
    return {
      content,
      messageId: input.messageId ?? uuidv7(),
      exchange: input.exchange ?? this.#exchange,
      routingKey: input.routingKey,
      headers,
      type: input.type,
      correlationId: input.correlationId,
      timestamp: Date.now(),
    };
  }

  /** Through the exchange and the bindings when there is one; straight into the queue when it has no binding. */
  #send(message: BrokerMessage): void {
    const queue = this.inbox.queue;
    if (message.exchange === "") {
      this.broker.sendToQueue(queue, message);
      return;
    }
    const { exchange, routingKey, ...rest } = message;
    const reached = this.broker.publish(exchange, routingKey, rest);
    if (!reached.includes(queue)) {
      throw new OutboxExpectationError(
        `A message to exchange "${exchange}" with routing key "${routingKey}" does not reach the inbox's queue "${queue}" (it reached ${reached.length === 0 ? "no queue" : reached.join(", ")}): check the queue's bindings, or the routing key.`,
      );
    }
  }

  async #settle(ids: string[]): Promise<DeliveryOutcome[]> {
    const deadline = Date.now() + this.#timeoutMs;
    for (;;) {
      const waiting = this.broker.messages(this.inbox.queue).length + this.broker.unacked(this.inbox.queue);
      if (waiting === 0) {
        const rows = ids.length === 0 ? [] : (await this.#pool.pool.query<InboxStateRow>(this.#sql.state, [ids])).rows;
        const outcomes = ids.map((id) =>
          this.#outcome(
            id,
            rows.filter((r) => r.message_id === id),
          ),
        );
        const open = outcomes.filter((o, i) => !this.#isSettled(o, rows, ids[i]!));
        if (open.length === 0) return outcomes;
        if (Date.now() > deadline) throw this.#timedOut(open, 0);
      } else if (Date.now() > deadline) {
        throw this.#timedOut([], waiting);
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        void sleep(5).then(resolve);
      });
    }
  }

  #isSettled(outcome: DeliveryOutcome, rows: InboxStateRow[], id: string): boolean {
    if (outcome.invalid !== undefined && outcome.handlers.length === 0) return true;
    if (outcome.handlers.length === 0) return false;
    return rows
      .filter((r) => r.message_id === id)
      .every(
        (r) =>
          r.status !== "pending" ||
          (r.later && this.#retries.get(`${r.message_id}\0${r.handler}`) === r.attempts && r.attempts > 0),
      );
  }

  #outcome(messageId: string, rows: InboxStateRow[]): DeliveryOutcome {
    return {
      messageId,
      duplicate: this.#tracked.get(messageId)?.duplicate ?? false,
      invalid: this.#invalid.get(messageId),
      handlers: rows.map((r) => ({
        handler: r.handler,
        status: r.status === "pending" ? "retrying" : r.status,
        attempts: r.attempts,
        error: r.last_error ?? undefined,
        nextAttemptAt: r.status === "pending" ? new Date(r.available_at) : undefined,
      })),
    };
  }

  #timedOut(open: DeliveryOutcome[], waiting: number): OutboxExpectationError {
    if (waiting > 0) {
      return new OutboxExpectationError(
        `The inbox did not store its deliveries within ${this.#timeoutMs} ms: ${waiting} still wait in queue "${this.inbox.queue}" or are unacked. Is the inbox stopped, or its database unreachable?`,
      );
    }
    const lines = open.map(
      (o) =>
        `  ${o.messageId}: ${
          o.handlers.length === 0
            ? "not stored"
            : o.handlers.map((h) => `${h.handler} attempts ${h.attempts}${h.error ? ` (${h.error})` : ""}`).join(", ")
        }`,
    );
    return new OutboxExpectationError(
      `${open.length} message(s) were not settled (processed, dead, or waiting for a retry) within ${this.#timeoutMs} ms:\n${lines.join("\n")}\nA handler may be hanging, or a retry became due and is running.`,
    );
  }

  #onEvent(event: InboxEvent): void {
    if (event.type === "retry-scheduled") this.#retries.set(`${event.messageId}\0${event.handler}`, event.attempts);
    else if (event.type === "invalid" && event.messageId !== undefined)
      this.#invalid.set(event.messageId, event.reason);
    this.#wake?.();
  }
}

/**
 * Starts the app's inbox on an in-memory broker and the app's database, and returns the harness that delivers to
 * it. An inbox starts once: define it in the test file (or a factory), and stop the harness after the test.
 */
export async function startInboxHarness(inbox: Inbox, options: InboxHarnessOptions): Promise<InboxHarness> {
  if (!isInbox(inbox)) throw new OutboxConfigError("Expected startInboxHarness() to get an inbox made by inbox().");
  if (typeof options !== "object" || options === null) {
    throw new OutboxConfigError("Expected startInboxHarness(inbox, { databaseUrl | database, ... }).");
  }
  rejectUnknownKeys("startInboxHarness()", options, Object.keys(OPTION_KEYS));
  const database = resolveDatabase(options.databaseUrl, options.database);
  const timeoutMs = durationOption("timeoutMs", options.timeoutMs, 5_000, 1);
  const broker = options.broker ?? new MemoryBroker();
  const clock = options.clock;
  const pool = openPool(database.source, { max: 2, application_name: "prisma-outbox testing" });
  const names = inboxNames(inbox.schema);
  try {
    if (clock !== undefined) await clock.install(pool.pool);
    await inbox.start({
      ...(options.databaseUrl !== undefined ? { databaseUrl: options.databaseUrl } : { database: options.database! }),
      transport: broker,
      ...(clock !== undefined ? { clock } : {}),
    });
  } catch (error) {
    await pool.close().catch(() => {});
    if (error instanceof OutboxConfigError && /NOT_FOUND 404/.test(error.message)) {
      throw new OutboxConfigError(
        `${error.message}: declare the exchange in the inbox's \`exchanges\`, or start an outbox harness that declares it on the same broker first.`,
        { cause: error },
      );
    }
    throw error;
  }
  const now = clock?.sql ?? "now()";
  return new InboxHarness({
    broker,
    inbox,
    pool,
    sql: { state: inboxStateSql(names, now), holds: inboxHoldsSql(names) },
    timeoutMs,
    exchange: inbox.bindings[0]?.exchange ?? "",
  });
}
