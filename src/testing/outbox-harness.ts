// The sending side under test: a real relay on the app's real outbox table, publishing into the in-memory broker.
// A test writes through the app's own code, then awaits what was published; the harness knows when the outbox is
// drained (outboxStateSql: no row due), so no test sleeps. Everything but the broker is what runs in production: the
// rows, their transactions (a rolled-back one publishes nothing), the relay's claims, retries and dead letters.
import type pg from "pg";
import { resolveDatabase } from "../config/database.js";
import { durationOption, rejectUnknownKeys } from "../config/validate.js";
import { OutboxConfigError, OutboxExpectationError } from "../errors.js";
import type { RelayOptions } from "../relay/options.js";
import { createRelay, type Relay } from "../relay/relay.js";
import { sleep } from "../runtime/backoff.js";
import { type OwnedPool, openPool } from "../runtime/pg.js";
import { outboxNames } from "../sql/names.js";
import { type OutboxStateRow, outboxStateSql } from "../sql/testing/state.js";
import { MemoryBroker } from "../transport/memory-broker.js";
import type { ExchangeSpec } from "../transport/transport.js";
import type { TestClock } from "./clock.js";
import {
  type CapturedMessage,
  decodePayload,
  describeFilter,
  describeMessages,
  type MessageFilter,
  matches,
  orderingKeyOf,
  pairUp,
} from "./match.js";

/** The queue the harness binds to every topic, fanout and headers exchange, so that what the app sends is routable. */
export const CAPTURE_QUEUE = "prisma-outbox.testing.captured";

/** Relay options a test may tune; the connection, the transport, the schema and the clock are the harness's. */
export type HarnessRelayOptions = Omit<
  RelayOptions,
  "databaseUrl" | "database" | "listenUrl" | "amqpUrl" | "transport" | "schema" | "exchanges"
>;

export interface OutboxHarnessOptions {
  /** The app's database (the one its `outbox()` client writes to). Give this or `database`. */
  databaseUrl?: string;
  /** A pg config, or the app's pg.Pool (borrowed, never ended). */
  database?: pg.PoolConfig | pg.Pool;
  /** The outbox tables' schema, as given to `outbox()`. @defaultValue "public" */
  schema?: string;
  /** Where the relay publishes; share it with an inbox harness to run both sides in one process. @defaultValue a new one */
  broker?: MemoryBroker;
  /** The exchanges the app publishes to, declared on the broker as the relay declares them on RabbitMQ. */
  exchanges?: ExchangeSpec[];
  /**
   * Bind a queue that takes everything to each topic, fanout and headers exchange, so that a message no consumer of
   * this test has bound is still routable (RabbitMQ refuses an unroutable message, and the relay retries it). Set it
   * to false to test that refusal. Direct exchanges route by exact key: bind their queues yourself.
   * @defaultValue true
   */
  captureAll?: boolean;
  /** The test clock: retries and `availableAt` move with it instead of waiting. */
  clock?: TestClock;
  /** How long an expectation waits for the outbox to drain. @defaultValue 5_000 */
  timeoutMs?: number;
  /** More relay options (batch size, attempts, backoff...). */
  relay?: HarnessRelayOptions;
}

const OPTION_KEYS = {
  databaseUrl: true,
  database: true,
  schema: true,
  broker: true,
  exchanges: true,
  captureAll: true,
  clock: true,
  timeoutMs: true,
  relay: true,
} satisfies Record<keyof OutboxHarnessOptions, true>;

/** Where a test's interest begins: expectations with `since` see only what was published after it. */
export interface Mark {
  readonly position: number;
}

export interface ExpectOptions {
  /** Only messages published after this mark. @defaultValue the harness's start */
  since?: Mark;
  /** Fail also when other messages were published (after `since`). @defaultValue false */
  exactly?: boolean;
}

export class OutboxHarness {
  readonly broker: MemoryBroker;
  readonly relay: Relay;
  readonly #pool: OwnedPool;
  readonly #state: string;
  readonly #timeoutMs: number;
  readonly #captured: CapturedMessage[] = [];
  readonly #unsubscribe: () => void;

  /** @internal Made by startOutboxHarness(). */
  constructor(parts: { broker: MemoryBroker; relay: Relay; pool: OwnedPool; state: string; timeoutMs: number }) {
    this.broker = parts.broker;
    this.relay = parts.relay;
    this.#pool = parts.pool;
    this.#state = parts.state;
    this.#timeoutMs = parts.timeoutMs;
    this.#unsubscribe = parts.broker.onPublish(({ message, queues }) => {
      // Unroutable: returned to the relay (mandatory), which retries it; not published.
      if (queues.length === 0) return;
      this.#captured.push({
        messageId: message.messageId,
        exchange: message.exchange,
        routingKey: message.routingKey,
        key: orderingKeyOf(message.headers),
        payload: decodePayload(message.content),
        headers: { ...message.headers },
        type: message.type,
        correlationId: message.correlationId,
        queues: [...queues],
      });
    });
  }

  /** A point in what was published: pass it as `since` to look only at what comes after. */
  mark(): Mark {
    return { position: this.#captured.length };
  }

  /**
   * Waits until no outbox row is due (every committed message the relay can publish now is published), and returns
   * what still waits for a later time (retries: advance the test clock).
   */
  async drain(timeoutMs = this.#timeoutMs): Promise<OutboxStateRow> {
    const deadline = Date.now() + timeoutMs;
    for (let pass = 0; ; pass++) {
      const state = (await this.#pool.pool.query<OutboxStateRow>(this.#state)).rows[0]!;
      if (state.due === 0) return state;
      if (Date.now() > deadline) {
        throw new OutboxExpectationError(
          `The outbox did not drain within ${timeoutMs} ms: ${state.due} messages are still due` +
            (state.last_error ? ` (the last error: ${state.last_error}).` : ".") +
            " Is the relay stopped, or the exchange not declared in `exchanges`?",
        );
      }
      this.relay.wake();
      await sleep(pass < 20 ? 1 : 5);
    }
  }

  /** Every message published (after `since`, when given) that matches the filter, once the outbox has drained. */
  async published(filter: MessageFilter & { since?: Mark } = {}): Promise<CapturedMessage[]> {
    await this.drain();
    const { since, ...rest } = filter;
    return this.#since(since).filter((m) => matches(rest, m));
  }

  /**
   * Fails unless, once the outbox has drained, each filter matches its own published message (in any order);
   * with `exactly`, also unless nothing else was published. Returns the messages matched, in the filters' order.
   */
  async expectPublished(
    expected: MessageFilter | MessageFilter[],
    options: ExpectOptions = {},
  ): Promise<CapturedMessage[]> {
    const filters = Array.isArray(expected) ? expected : [expected];
    const state = await this.drain();
    const messages = this.#since(options.since);
    const { matched, unmatched, extra } = pairUp(filters, messages);
    const surplus = options.exactly === true && extra.length > 0;
    if (unmatched.length === 0 && !surplus) return matched;
    const lines = [
      unmatched.length > 0
        ? `Expected ${filters.length} message${filters.length === 1 ? "" : "s"} published${sinceText(options)}; ${unmatched.length} did not match any:`
        : `Expected exactly ${filters.length} message${filters.length === 1 ? "" : "s"} published${sinceText(options)}; ${extra.length} more arrived:`,
      ...(unmatched.length > 0
        ? unmatched.map((i) => `  missing: ${describeFilter(filters[i]!)}`)
        : extra.map((m) => `  extra: ${describeMessages([m]).trim().replace(/^1\. /, "")}`)),
      `Published${sinceText(options)}:`,
      describeMessages(messages),
      ...waitingText(state),
    ];
    throw new OutboxExpectationError(lines.join("\n"));
  }

  /** Fails if any message matching the filter (any message, without one) was published after `since`. */
  async expectNone(filter: MessageFilter & { since?: Mark } = {}): Promise<void> {
    const state = await this.drain();
    const { since, ...rest } = filter;
    const found = this.#since(since).filter((m) => matches(rest, m));
    if (found.length === 0) return;
    throw new OutboxExpectationError(
      [
        `Expected no message${Object.keys(rest).length > 0 ? ` matching ${describeFilter(rest)}` : ""} published${sinceText({ since })}; ${found.length} arrived:`,
        describeMessages(found),
        ...waitingText(state),
      ].join("\n"),
    );
  }

  /** Stops the relay and closes the harness's connections (the app's pool, if given, is left open). */
  async stop(): Promise<void> {
    this.#unsubscribe();
    await this.relay.stop();
    await this.#pool.close().catch(() => {});
  }

  #since(mark: Mark | undefined): CapturedMessage[] {
    return this.#captured.slice(mark?.position ?? 0);
  }
}

function sinceText(options: { since?: Mark | undefined }): string {
  return options.since === undefined ? "" : " since the mark";
}

function waitingText(state: OutboxStateRow): string[] {
  const lines: string[] = [];
  if (state.waiting > 0) {
    const next = state.next_at ? ` (the next at ${new Date(state.next_at).toISOString()})` : "";
    const error = state.last_error ? `; the last error: ${state.last_error}` : "";
    lines.push(`${state.waiting} message(s) wait in the outbox for a retry${next}${error}: advance the test clock.`);
  }
  if (state.dead_letters > 0) lines.push(`${state.dead_letters} message(s) are in the outbox's dead letters.`);
  return lines;
}

/**
 * Starts a relay on the app's database that publishes into an in-memory broker, and returns the harness that
 * watches it. Stop it after the test (`afterAll(() => harness.stop())`).
 */
export async function startOutboxHarness(options: OutboxHarnessOptions): Promise<OutboxHarness> {
  if (typeof options !== "object" || options === null) {
    throw new OutboxConfigError("Expected startOutboxHarness() to get { databaseUrl | database, exchanges, ... }.");
  }
  rejectUnknownKeys("startOutboxHarness()", options, Object.keys(OPTION_KEYS));
  const database = resolveDatabase(options.databaseUrl, options.database);
  const timeoutMs = durationOption("timeoutMs", options.timeoutMs, 5_000, 1);
  const broker = options.broker ?? new MemoryBroker();
  const exchanges = options.exchanges ?? [];
  const clock = options.clock;
  const pool = openPool(database.source, { max: 2, application_name: "prisma-outbox testing" });
  const names = outboxNames(options.schema);
  const relay = createRelay({
    sweepIntervalMs: 50,
    retryBaseDelayMs: 1_000,
    ...options.relay,
    ...(options.databaseUrl !== undefined ? { databaseUrl: options.databaseUrl } : { database: options.database! }),
    ...(options.schema !== undefined ? { schema: options.schema } : {}),
    ...(clock !== undefined ? { clock } : {}),
    transport: broker.transport(),
    exchanges,
  });
  try {
    if (clock !== undefined) await clock.install(pool.pool);
    await relay.start();
    if (options.captureAll !== false) captureEverything(broker, exchanges);
  } catch (error) {
    await relay.stop().catch(() => {});
    await pool.close().catch(() => {});
    throw error;
  }
  return new OutboxHarness({ broker, relay, pool, state: outboxStateSql(names, clock?.sql ?? "now()"), timeoutMs });
}

/** Binds CAPTURE_QUEUE so that every message to these exchanges is routable (see `captureAll`). */
function captureEverything(broker: MemoryBroker, exchanges: ExchangeSpec[]): void {
  broker.assertQueue(CAPTURE_QUEUE);
  for (const exchange of exchanges) {
    if (exchange.type === "topic") broker.bindQueue(CAPTURE_QUEUE, exchange.name, "#");
    else if (exchange.type === "fanout") broker.bindQueue(CAPTURE_QUEUE, exchange.name, "");
    // x-match all with no header to match: every message.
    else if (exchange.type === "headers") broker.bindQueue(CAPTURE_QUEUE, exchange.name, "", { "x-match": "all" });
  }
}
