// Names shared by every statement, for the PostgreSQL schema that holds the tables (the outbox's, the inbox's and
// request-reply's: each part has its own `schema` option). The shipped Prisma models map to exactly these tables
// (@@map); Prisma creates them in the schema of the migration's connection (`public` unless the URL says `?schema=`,
// or `@@schema` places the models).
//
// Every statement uses the schema-qualified, quoted names: the tables are found where the app's Prisma put them,
// whatever the session's search_path (which Prisma does not set, and which a pooler may not keep), and any schema
// name PostgreSQL accepts (mixed case, dashes, quotes) is written safely.
//
// `now` is the SQL for the current time in the relay's and the inbox's statements: PostgreSQL's now() unless a clock
// is given (the test kit's TestClock, src/runtime/clock.ts). Names are computed once per schema and clock, so every
// statement is built with the clock's SQL once, not per query.
import { createHash } from "node:crypto";
import { type Clock, databaseClock } from "../runtime/clock.js";

/** The default schema, where Prisma puts the models unless told otherwise. */
export const DEFAULT_SCHEMA = "public";

/** The NOTIFY channel of the `public` schema; the name writers and relays have always used. */
const BASE_CHANNEL = "prisma_outbox";

/** Names that need no quoting in a string literal or an identifier, and read well in pg_stat_activity. */
const PLAIN_NAME = /^[a-z_][a-z0-9_]*$/;

/** PostgreSQL keeps identifiers (channel names included) up to NAMEDATALEN - 1 bytes. */
const MAX_IDENTIFIER_BYTES = 63;

export interface OutboxNames {
  schema: string;
  /** `"schema"."outbox_message"`: the outbox table. */
  outboxTable: string;
  /** `"schema"."outbox_dead_letter"`: where messages go after their last allowed attempt. */
  deadLetterTable: string;
  /**
   * The NOTIFY channel writers signal on commit and relays LISTEN to, one per schema: a relay wakes only for its own
   * outbox. `prisma_outbox` for `public`; `prisma_outbox.<schema>` for others (a hash of the schema when that would
   * not be a plain name of at most 63 bytes). Only [a-z0-9_.] characters, so it is safe inside a string literal.
   */
  notifyChannel: string;
  /** SQL for "now" in the relay's statements: `now()`, or the clock's (runtime/clock.ts). */
  now: string;
}

/** A quoted identifier: `"` doubled inside, so that any name is one identifier and nothing else. */
export function quoteIdentifier(name: string): string {
  if (name.includes("\0")) throw new TypeError("An identifier cannot contain NUL");
  return `"${name.replaceAll('"', '""')}"`;
}

function channelFor(schema: string): string {
  if (schema === DEFAULT_SCHEMA) return BASE_CHANNEL;
  const plain = `${BASE_CHANNEL}.${schema}`;
  if (PLAIN_NAME.test(schema) && Buffer.byteLength(plain) <= MAX_IDENTIFIER_BYTES) return plain;
  return `${BASE_CHANNEL}.${createHash("sha256").update(schema).digest("hex").slice(0, 32)}`;
}

/** The outbox's names for one schema and clock (computed once per pair). */
export const outboxNames: (schema?: string, clock?: Clock) => OutboxNames = cached((schema, now) => {
  const qualified = quoteIdentifier(schema);
  return {
    schema,
    outboxTable: `${qualified}.${quoteIdentifier("outbox_message")}`,
    deadLetterTable: `${qualified}.${quoteIdentifier("outbox_dead_letter")}`,
    notifyChannel: channelFor(schema),
    now,
  };
});

export interface InboxNames {
  schema: string;
  /** `"schema"."inbox_message"`: the inbox table (prisma/inbox.prisma), dedupe records and pending work. */
  inboxTable: string;
  /** SQL for "now" in the inbox's statements: `now()`, or the clock's (runtime/clock.ts). */
  now: string;
}

export interface RequestNames {
  schema: string;
  /** `"schema"."outbox_request"`: the status table of request-reply (prisma/request.prisma). */
  requestTable: string;
}

/**
 * A text literal holding any text: an E'' literal with `\` and `'` doubled reads the same whatever the session's
 * standard_conforming_strings (in a plain '' literal a backslash is an escape when that setting is off).
 */
export function quoteLiteral(text: string): string {
  if (text.includes("\0")) throw new TypeError("A literal cannot contain NUL");
  return `E'${text.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
}

/**
 * One cache per kind of names: the names of a schema and a clock's SQL are computed once. Keyed by both (a schema
 * name may hold any character, so the key is the pair, not a joined text).
 */
function cached<T>(make: (schema: string, now: string) => T): (schema?: string, clock?: Clock) => T {
  const cache = new Map<string, Map<string, T>>();
  return (schema = DEFAULT_SCHEMA, clock = databaseClock) => {
    let bySchema = cache.get(clock.sql);
    if (!bySchema) {
      bySchema = new Map();
      cache.set(clock.sql, bySchema);
    }
    let names = bySchema.get(schema);
    if (!names) {
      // In brackets, so that the clock's expression binds as one operand wherever a statement puts it.
      names = make(schema, clock.sql === databaseClock.sql ? clock.sql : `(${clock.sql})`);
      bySchema.set(schema, names);
    }
    return names;
  };
}

/** The inbox's names in one schema (the `schema` option of `inbox()`), with the clock of its `start()`. */
export const inboxNames: (schema?: string, clock?: Clock) => InboxNames = cached((schema, now) => ({
  schema,
  inboxTable: `${quoteIdentifier(schema)}.${quoteIdentifier("inbox_message")}`,
  now,
}));

/**
 * Request-reply's names in one schema (the `schema` option of `requests()`). Its statements stay on PostgreSQL's
 * now(): its times are the status's own record (started, updated, expires) and no retry or lease waits on them.
 */
export const requestNames: (schema?: string) => RequestNames = cached((schema) => ({
  schema,
  requestTable: `${quoteIdentifier(schema)}.${quoteIdentifier("outbox_request")}`,
}));
