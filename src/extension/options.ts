// Options of `outbox()`: typed, documented, defaulted and validated in one place.

import {
  durationOption,
  enumOption,
  expectNumber,
  integerOption,
  rejectUnknownKeys,
  schemaOption,
  stringOption,
  withinBytes,
} from "../config/validate.js";
import { OutboxConfigError } from "../errors.js";
import { defaultOutboxQueue, type OutboxQueue } from "../handoff/outbox-queue.js";
import type { OutboxMessageInput } from "../message/message.js";

/** The write operations a declared event may follow. Each returns the records it wrote. */
const EVENT_OPERATIONS = [
  "create",
  "update",
  "upsert",
  "delete",
  "createManyAndReturn",
  "updateManyAndReturn",
] as const;
export type EventOperation = (typeof EVENT_OPERATIONS)[number];

/** Operations that return only a count: there is no record to build an event from. */
const COUNT_OPERATIONS: Record<string, string | undefined> = {
  createMany: "Use createManyAndReturn",
  updateMany: "Use updateManyAndReturn",
  deleteMany: "Declare `delete` and delete records one by one",
};

const PAST_TENSE: Record<EventOperation, string> = {
  create: "created",
  update: "updated",
  upsert: "upserted",
  delete: "deleted",
  createManyAndReturn: "created",
  updateManyAndReturn: "updated",
};

export interface EventContext {
  /** The model, as named in the schema (e.g. `Order`). */
  model: string;
  operation: EventOperation;
  /** The arguments of the model call. */
  args: unknown;
}

/**
 * What a model write publishes:
 * - `true`: one message with routing key `<model>.<created|updated|upserted|deleted>` (e.g. `order.created`) and
 *   the written record as payload;
 * - a string: the same with this routing key;
 * - `{ routingKey?, key }`: the same as `true` (or as the routing key given), with an ordering key (docs/ordering.md):
 *   the name of a field of the record (e.g. `"id"`), or a function of the record; its value (a string, number or
 *   BigInt, written as a string) is the message's `key`, and null/undefined means none;
 * - a function of the record: the message(s) to write, or null/undefined/[] for none. Called once per record
 *   (`createManyAndReturn` and `updateManyAndReturn` call it for each). Its messages may carry a `key`.
 */
export type EventSpec<TRecord = unknown> =
  | true
  | string
  | KeyedEventSpec<TRecord>
  | ((record: TRecord, context: EventContext) => OutboxMessageInput | OutboxMessageInput[] | null | undefined);

/** A default event (record as payload) with an ordering key. */
export interface KeyedEventSpec<TRecord = unknown> {
  /** @defaultValue `<model>.<created|updated|upserted|deleted>` */
  routingKey?: string;
  /** The field of the record whose value is the key, or a function of the record that returns it. */
  key: (unknown extends TRecord ? string : keyof TRecord & string) | ((record: TRecord) => unknown);
}

type AnyFn = (...args: any[]) => any;
/**
 * The record of a declared event: what the model delegate's `create` resolves to with the default selection, i.e.
 * the model's scalar and enum fields less those the client's `omit` option leaves out. That is what the extension
 * passes, whatever the call site selects, includes or omits.
 */
type RecordOf<TDelegate> = TDelegate extends { create: AnyFn } ? Awaited<ReturnType<TDelegate["create"]>> : unknown;
/** The model name a delegate serves, as written in the schema (Prisma's generated delegates carry it). */
type ModelNameOf<TDelegate, TKey extends string> = TDelegate extends {
  [key: symbol]: { meta: { name: infer N extends string } };
}
  ? N
  : Capitalize<TKey>;

/**
 * Declared events, keyed by model name as written in the schema (`Order`, `audit_log`) and by operation. Pass your
 * Prisma client's type as the type argument of `outbox<typeof prisma>()` to have records typed; without it they are
 * `unknown`. Unknown model names are an OutboxConfigError when the extension is applied.
 */
export type EventsConfig<TClient = unknown> = unknown extends TClient
  ? Record<string, Partial<Record<EventOperation, EventSpec>>>
  : {
      [K in keyof TClient as K extends string
        ? TClient[K] extends { create: AnyFn; findFirst: AnyFn }
          ? ModelNameOf<TClient[K], K>
          : never
        : never]?: Partial<Record<EventOperation, EventSpec<RecordOf<TClient[K]>>>>;
    };

/** Options of the transaction a declared write made outside any transaction runs in (see `transactionOptions`). */
export interface OutboxTransactionOptions {
  /** Longest wait for a connection, in ms. @defaultValue the client's `transactionOptions.maxWait` (Prisma: 2000) */
  maxWait?: number;
  /** Longest run of the transaction, in ms. @defaultValue the client's `transactionOptions.timeout` (Prisma: 5000) */
  timeout?: number;
  /** @defaultValue the client's `transactionOptions.isolationLevel` (the database's default: Read Committed) */
  isolationLevel?: "ReadUncommitted" | "ReadCommitted" | "RepeatableRead" | "Serializable";
}

export interface OutboxOptions<TClient = unknown> {
  /**
   * The exchange of messages that name none (declared events always use it unless their function returns one).
   * @defaultValue undefined: every message must name its exchange
   */
  exchange?: string;
  /**
   * Declared events: model writes that publish messages in the same transaction.
   * @example { Order: { create: true, update: "order.changed" } }
   * @defaultValue {}
   */
  events?: EventsConfig<TClient>;
  /**
   * Where committed message ids are handed to a relay in this process; `false` for none (relays in other
   * processes still wake up on NOTIFY).
   * @defaultValue the process-wide `defaultOutboxQueue`, which `createRelay()` also uses by default
   */
  queue?: OutboxQueue | false;
  /**
   * Largest payload, in bytes of JSON.
   * @defaultValue 1_048_576 (1 MiB)
   */
  maxPayloadBytes?: number;
  /**
   * A declared write called outside any transaction runs in an interactive transaction of its own, with the
   * message INSERT; these are that transaction's options (Prisma's `$transaction` options).
   * @defaultValue {}: the client's own `transactionOptions`, else Prisma's defaults (maxWait 2000 ms, timeout 5000 ms)
   */
  transactionOptions?: OutboxTransactionOptions;
  /**
   * The PostgreSQL schema of the outbox tables: where Prisma created them (the `?schema=` of the migration's URL,
   * or `@@schema`). The relay must be given the same.
   * @defaultValue "public"
   */
  schema?: string;
  /**
   * How relays in other processes learn of new messages (PostgreSQL NOTIFY; a relay in this process is handed the
   * ids by `queue` either way):
   * - `true`: after COMMIT, one NOTIFY at once, then at most one per `notifyIntervalMs` from this client, always one
   *   after the last commit. Writers scale as without NOTIFY.
   * - `"in-transaction"`: pg_notify inside every writing transaction. A crash after COMMIT cannot lose the wake-up,
   *   but PostgreSQL serialises the commits of notifying transactions: concurrent writers queue behind each other.
   * - `false`: none. Relays in other processes publish with their sweeper (within sweepMinAgeMs + sweepIntervalMs).
   *   For apps whose only relay runs in-process.
   * @defaultValue true
   */
  notify?: boolean | "in-transaction";
  /**
   * With `notify: true`, the shortest time between two NOTIFYs of this client: a cross-process wake-up waits at most
   * this long.
   * @defaultValue 5
   */
  notifyIntervalMs?: number;
}

export interface EventBuilder {
  /** True for `true` and routing-key specs: the payload is the JSON-safe copy of the record. */
  defaultPayload: boolean;
  /** `record`: the payload's record (JSON-safe for default payloads); `raw`: the record as Prisma returned it. */
  build: (record: unknown, context: EventContext, raw?: unknown) => OutboxMessageInput[];
}

interface ResolvedOutboxOptions {
  exchange: string | undefined;
  /** model -> operation -> builder */
  events: Map<string, Map<string, EventBuilder>>;
  queue: OutboxQueue | undefined;
  maxPayloadBytes: number;
  transactionOptions: OutboxTransactionOptions;
  schema: string;
  notify: boolean | "in-transaction";
  notifyIntervalMs: number;
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** The ordering key of a keyed event, as a string (null/undefined: none; anything else is refused by the message). */
function keyValue(value: unknown): unknown {
  return typeof value === "number" || typeof value === "bigint" ? String(value) : (value ?? undefined);
}

function builderFor(model: string, operation: EventOperation, spec: EventSpec): EventBuilder {
  if (spec === true || typeof spec === "string") {
    const routingKey = spec === true ? `${lowerFirst(model)}.${PAST_TENSE[operation]}` : spec;
    return { defaultPayload: true, build: (record) => [{ routingKey, payload: record }] };
  }
  if (typeof spec === "object") {
    const routingKey = spec.routingKey ?? `${lowerFirst(model)}.${PAST_TENSE[operation]}`;
    const { key } = spec;
    return {
      defaultPayload: true,
      // The payload is the JSON-safe copy; the key is read from the record as Prisma returned it.
      build: (record, _context, raw = record) => [
        {
          routingKey,
          payload: record,
          key: keyValue(
            typeof key === "function" ? key(raw) : (raw as Record<string, unknown>)[key as string],
          ) as string,
        },
      ],
    };
  }
  return {
    defaultPayload: false,
    build: (record, context) => {
      const out = spec(record, context);
      if (out === null || out === undefined) return [];
      return Array.isArray(out) ? out : [out];
    },
  };
}

function keyedSpecOk(spec: unknown): boolean {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) return false;
  const { routingKey, key, ...rest } = spec as { routingKey?: unknown; key?: unknown };
  if (Object.keys(rest).length > 0) return false;
  if (routingKey !== undefined && !withinBytes(routingKey, 255, 1)) return false;
  return (typeof key === "string" && key.length > 0) || typeof key === "function";
}

const ISOLATION_LEVELS = ["ReadUncommitted", "ReadCommitted", "RepeatableRead", "Serializable"] as const;

function resolveTransactionOptions(options: unknown): OutboxTransactionOptions {
  if (options === undefined) return {};
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new OutboxConfigError(`Expected \`transactionOptions\` to be an object, got ${String(options)}.`);
  }
  rejectUnknownKeys("transactionOptions", options, ["maxWait", "timeout", "isolationLevel"]);
  const { maxWait, timeout, isolationLevel } = options as OutboxTransactionOptions;
  for (const [name, value] of [
    ["maxWait", maxWait],
    ["timeout", timeout],
  ] as const) {
    if (value !== undefined) {
      expectNumber(`transactionOptions.${name}`, value, { min: 1, integer: true, unit: "milliseconds" });
    }
  }
  enumOption("transactionOptions.isolationLevel", isolationLevel, ISOLATION_LEVELS, undefined, { bare: true });
  const out: OutboxTransactionOptions = {};
  if (maxWait !== undefined) out.maxWait = maxWait;
  if (timeout !== undefined) out.timeout = timeout;
  if (isolationLevel !== undefined) out.isolationLevel = isolationLevel;
  return out;
}

/** Every option of outbox(): any other key is refused (a misspelt option would be ignored). */
const OUTBOX_OPTION_KEYS = {
  exchange: true,
  events: true,
  queue: true,
  maxPayloadBytes: true,
  transactionOptions: true,
  schema: true,
  notify: true,
  notifyIntervalMs: true,
} satisfies Record<keyof OutboxOptions, true>;

export function resolveOutboxOptions(options: OutboxOptions<any> = {}): ResolvedOutboxOptions {
  if (typeof options !== "object" || options === null) {
    throw new OutboxConfigError(`Expected outbox() options to be an object, got ${String(options)}.`);
  }
  rejectUnknownKeys("outbox()", options, Object.keys(OUTBOX_OPTION_KEYS));
  const { events = {}, queue, transactionOptions } = options;
  const exchange = stringOption("exchange", options.exchange, undefined, { minBytes: 1, maxBytes: 255 });
  const maxPayloadBytes = integerOption("maxPayloadBytes", options.maxPayloadBytes, 1_048_576, 1);
  if (typeof events !== "object" || events === null || Array.isArray(events)) {
    throw new OutboxConfigError(`Expected \`events\` to be an object keyed by model name, got ${String(events)}.`);
  }
  const notify = enumOption("notify", options.notify, [true, false, "in-transaction"], true);
  if (queue !== undefined && queue !== false && (typeof queue !== "object" || typeof queue.push !== "function")) {
    throw new OutboxConfigError("Expected `queue` to be an OutboxQueue or false.");
  }
  const resolved = new Map<string, Map<string, EventBuilder>>();
  for (const [model, operations] of Object.entries(events as Record<string, Record<string, unknown>>)) {
    if (typeof operations !== "object" || operations === null) {
      throw new OutboxConfigError(
        `Expected \`events.${model}\` to be an object of operations, got ${String(operations)}.`,
      );
    }
    const byOperation = new Map<string, EventBuilder>();
    for (const [operation, spec] of Object.entries(operations)) {
      if (spec === undefined || spec === false) continue;
      const countHint = COUNT_OPERATIONS[operation];
      if (countHint) {
        throw new OutboxConfigError(
          `\`events.${model}.${operation}\` cannot be declared: ${operation} returns only a count, so there is no ` +
            `record to build an event from. ${countHint}, or call $enqueue yourself in the same $transaction.`,
        );
      }
      if (!(EVENT_OPERATIONS as readonly string[]).includes(operation)) {
        throw new OutboxConfigError(
          `\`events.${model}.${operation}\` is not a write operation an event can follow; use one of: ${EVENT_OPERATIONS.join(", ")}.`,
        );
      }
      const okSpec = spec === true || withinBytes(spec, 255, 1) || typeof spec === "function" || keyedSpecOk(spec);
      if (!okSpec) {
        throw new OutboxConfigError(
          `Expected \`events.${model}.${operation}\` to be true, a routing key (1 to 255 bytes), { routingKey?, key } (key: a field name or a function of the record) or a function, got ${JSON.stringify(spec)}.`,
        );
      }
      byOperation.set(operation, builderFor(model, operation as EventOperation, spec as EventSpec));
    }
    if (byOperation.size > 0) {
      if (
        exchange === undefined &&
        [...Object.values(operations)].some((s) => s === true || typeof s === "string" || keyedSpecOk(s))
      ) {
        throw new OutboxConfigError(
          `\`events.${model}\` declares events without an exchange: set the \`exchange\` option of outbox(), or use a function that returns messages with an \`exchange\`.`,
        );
      }
      resolved.set(model, byOperation);
    }
  }
  return {
    exchange,
    events: resolved,
    queue: queue === false ? undefined : (queue ?? defaultOutboxQueue),
    maxPayloadBytes,
    transactionOptions: resolveTransactionOptions(transactionOptions),
    schema: schemaOption("schema", options.schema),
    notify,
    notifyIntervalMs: durationOption("notifyIntervalMs", options.notifyIntervalMs, 5, 0),
  };
}
