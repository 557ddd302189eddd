// Names shared by every statement, for the PostgreSQL schema that holds the tables (the outbox's, the inbox's and
// request-reply's: each part has its own `schema` option). The shipped Prisma models map to exactly these tables
// (@@map); Prisma creates them in the schema of the migration's connection (`public` unless the URL says `?schema=`,
// or `@@schema` places the models).
//
// Every statement uses the schema-qualified, quoted names: the tables are found where the app's Prisma put them,
// whatever the session's search_path (which Prisma does not set, and which a pooler may not keep), and any schema
// name PostgreSQL accepts (mixed case, dashes, quotes) is written safely.
import { createHash } from "node:crypto";

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

const cache = new Map<string, OutboxNames>();

/** The names for one schema (computed once per schema). */
export function outboxNames(schema: string = DEFAULT_SCHEMA): OutboxNames {
  let names = cache.get(schema);
  if (!names) {
    const qualified = quoteIdentifier(schema);
    names = {
      schema,
      outboxTable: `${qualified}.${quoteIdentifier("outbox_message")}`,
      deadLetterTable: `${qualified}.${quoteIdentifier("outbox_dead_letter")}`,
      notifyChannel: channelFor(schema),
    };
    cache.set(schema, names);
  }
  return names;
}

export interface InboxNames {
  schema: string;
  /** `"schema"."inbox_message"`: the inbox table (prisma/inbox.prisma), dedupe records and pending work. */
  inboxTable: string;
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

/** One cache per kind of names: a schema's names are computed once. */
function cached<T>(make: (schema: string) => T): (schema?: string) => T {
  const cache = new Map<string, T>();
  return (schema = DEFAULT_SCHEMA) => {
    let names = cache.get(schema);
    if (!names) {
      names = make(schema);
      cache.set(schema, names);
    }
    return names;
  };
}

/** The inbox's names in one schema (the `schema` option of `inbox()`). */
export const inboxNames: (schema?: string) => InboxNames = cached((schema) => ({
  schema,
  inboxTable: `${quoteIdentifier(schema)}.${quoteIdentifier("inbox_message")}`,
}));

/** Request-reply's names in one schema (the `schema` option of `requests()`). */
export const requestNames: (schema?: string) => RequestNames = cached((schema) => ({
  schema,
  requestTable: `${quoteIdentifier(schema)}.${quoteIdentifier("outbox_request")}`,
}));
