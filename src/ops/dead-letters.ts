// List, retry and purge dead letters, as library calls behind `prisma-outbox dead-letters`: the outbox's dead letters
// (outbox_dead_letter) or the inbox's dead rows (inbox_message, status 'dead'), in the schema given.
import type pg from "pg";
import { integerOption, schemaOption } from "../config/validate.js";
import { OutboxConfigError } from "../errors.js";
import { UNDEFINED_TABLE } from "../sql/check-table.js";
import {
  countInboxDeadSql,
  type InboxDeadRow,
  listInboxDeadSql,
  purgeInboxDeadSql,
  retryInboxDeadSql,
} from "../sql/inbox/dead-rows.js";
import { DEFAULT_SCHEMA, inboxNames, outboxNames } from "../sql/names.js";
import { type DeadLetterFilter, deadLetterFilterSql, hasFilter } from "../sql/ops/dead-letter-filter.js";
import {
  countDeadLettersSql,
  countRetryableSql,
  type DeadLetterRow,
  listDeadLettersSql,
  listRetryableSql,
  purgeDeadLettersSql,
  retryDeadLettersSql,
} from "../sql/ops/dead-letters.js";
import { notifySql } from "../sql/outbox/notify.js";

export type { DeadLetterFilter } from "../sql/ops/dead-letter-filter.js";

export interface DeadLetterTarget {
  /** The outbox's dead letters, or the inbox's dead rows. */
  source: "outbox" | "inbox";
  /** The schema of the outbox tables, or of the inbox table. @defaultValue "public" */
  schema?: string | undefined;
}

/** One dead letter (outbox) or dead row (inbox), as listed. */
export interface ListedDeadLetter {
  id: string;
  messageId: string | null;
  /** Inbox only: the handler that gave up ('' for an invalid delivery). */
  handler?: string;
  exchange: string;
  routingKey: string;
  type: string | null;
  correlationId: string | null;
  attempts: number;
  lastError: string | null;
  createdAt?: string;
  /** Outbox: when it was dead-lettered. */
  failedAt?: string;
  /** Inbox: when it was received. */
  receivedAt?: string;
  payload: unknown;
}

export interface DeadLetterList {
  /** How many match the filters (the rows are the newest `limit` of them). */
  total: number;
  rows: ListedDeadLetter[];
}

export interface DeadLetterChange {
  /** Rows retried or purged, or that would be with `dryRun`. */
  count: number;
  dryRun: boolean;
  /** With `dryRun`: the newest of the rows that would change (at most `preview`). */
  rows?: ListedDeadLetter[];
}

function shownOutbox(r: DeadLetterRow): ListedDeadLetter {
  return {
    id: r.id,
    messageId: r.message_id,
    exchange: r.exchange,
    routingKey: r.routing_key,
    type: r.type,
    correlationId: r.correlation_id,
    attempts: r.attempts,
    lastError: r.last_error,
    createdAt: r.created_at.toISOString(),
    failedAt: r.failed_at.toISOString(),
    payload: r.payload,
  };
}

function shownInbox(r: InboxDeadRow): ListedDeadLetter {
  return {
    id: r.id,
    messageId: r.message_id,
    handler: r.handler,
    exchange: r.exchange,
    routingKey: r.routing_key,
    type: r.type,
    correlationId: r.correlation_id,
    attempts: r.attempts,
    lastError: r.last_error,
    receivedAt: r.received_at.toISOString(),
    payload: r.payload,
  };
}

/** A missing table becomes an error that says what to do; anything else passes through. */
async function onTable<T>(target: DeadLetterTarget, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if ((error as { code?: string }).code !== UNDEFINED_TABLE) throw error;
    const schema = target.schema ?? DEFAULT_SCHEMA;
    const what =
      target.source === "inbox"
        ? `The table inbox_message does not exist${schema === DEFAULT_SCHEMA ? "" : ` in schema "${schema}"`}: add prisma/inbox.prisma of the package to your schema and migrate.`
        : `The outbox tables do not exist in schema "${schema}": migrate, or pass the schema that holds them (the schema option, or --schema).`;
    throw new OutboxConfigError(what, { cause: error });
  }
}

const filterOf = (target: DeadLetterTarget, filter: DeadLetterFilter) =>
  deadLetterFilterSql(filter, target.source === "inbox" ? "received_at" : "failed_at");

function checkFilter(target: DeadLetterTarget, filter: DeadLetterFilter, change?: ChangeOptions): void {
  if (target.source === "outbox" && filter.handlers?.length) {
    throw new OutboxConfigError("The handler filter applies to the inbox's dead rows only (--inbox).");
  }
  schemaOption("schema", target.schema);
  if (change && !change.all && !hasFilter(filter)) {
    throw new OutboxConfigError("Expected a filter, or `all: true` to change every dead letter.");
  }
}

/** The newest `limit` dead letters that match, and how many match in all. */
export async function listDeadLetters(
  pool: pg.Pool,
  target: DeadLetterTarget,
  filter: DeadLetterFilter = {},
  limit = 50,
): Promise<DeadLetterList> {
  checkFilter(target, filter);
  integerOption("limit", limit, 50, 1);
  const f = filterOf(target, filter);
  return onTable(target, () => matching(pool, target, f, limit, false));
}

/**
 * How many rows the filter selects and the first `limit` of them: what list shows and what a dry run previews.
 * `retryable`: only the rows a retry would move (outbox: not already back in the outbox; inbox: not invalid).
 */
async function matching(
  pool: pg.Pool,
  target: DeadLetterTarget,
  f: ReturnType<typeof filterOf>,
  limit: number,
  retryable: boolean,
): Promise<DeadLetterList> {
  if (target.source === "inbox") {
    const names = inboxNames(target.schema ?? DEFAULT_SCHEMA);
    const total = (await pool.query(countInboxDeadSql(names, f, retryable), f.params)).rows[0].count as number;
    const rows = (await pool.query<InboxDeadRow>(listInboxDeadSql(names, f, retryable), [...f.params, limit])).rows;
    return { total, rows: rows.map(shownInbox) };
  }
  const names = outboxNames(target.schema ?? DEFAULT_SCHEMA);
  const count = retryable ? countRetryableSql(names, f) : countDeadLettersSql(names, f);
  const list = retryable ? listRetryableSql(names, f) : listDeadLettersSql(names, f);
  const total = (await pool.query(count, f.params)).rows[0].count as number;
  const rows = (await pool.query<DeadLetterRow>(list, [...f.params, limit])).rows;
  return { total, rows: rows.map(shownOutbox) };
}

export interface ChangeOptions {
  /** Required to retry or purge every dead letter when the filter selects nothing in particular. */
  all?: boolean | undefined;
  /** Count and show what would change, change nothing. */
  dryRun?: boolean | undefined;
  /** With dryRun: how many of the rows to return. @defaultValue 20 */
  preview?: number | undefined;
}

/** What retry and purge share: the filter checked, a dry run answered with a count and a preview, else `apply`. */
async function change(
  pool: pg.Pool,
  target: DeadLetterTarget,
  filter: DeadLetterFilter,
  options: ChangeOptions,
  retrying: boolean,
  apply: (f: ReturnType<typeof filterOf>) => Promise<DeadLetterChange>,
): Promise<DeadLetterChange> {
  checkFilter(target, filter, options);
  const f = filterOf(target, filter);
  const preview = integerOption("preview", options.preview, 20, 1);
  return onTable(target, async () => {
    if (!options.dryRun) return apply(f);
    const { total, rows } = await matching(pool, target, f, preview, retrying);
    return { count: total, dryRun: true, rows };
  });
}

/**
 * Outbox: moves the matching dead letters back into the outbox (same message id, attempts 0, due now) and wakes the
 * relays with a NOTIFY on the schema's channel, in one transaction. Dead letters whose message id is in the outbox
 * already are left alone. Inbox: sets the matching dead rows (not invalid deliveries) back to pending, attempts 0.
 */
export async function retryDeadLetters(
  pool: pg.Pool,
  target: DeadLetterTarget,
  filter: DeadLetterFilter,
  options: ChangeOptions = {},
): Promise<DeadLetterChange> {
  return change(pool, target, filter, options, true, async (f) => {
    if (target.source === "inbox") {
      const names = inboxNames(target.schema ?? DEFAULT_SCHEMA);
      const count = (await pool.query(retryInboxDeadSql(names, f), f.params)).rows[0].count as number;
      return { count, dryRun: false };
    }
    const names = outboxNames(target.schema ?? DEFAULT_SCHEMA);
    const client = await pool.connect();
    let failed = false;
    try {
      await client.query("BEGIN");
      const { moved } = (await client.query(retryDeadLettersSql(names, f), f.params)).rows[0];
      // Delivered at COMMIT, so a relay that wakes finds the rows committed.
      if (moved > 0) await client.query(notifySql(names));
      await client.query("COMMIT");
      return { count: moved as number, dryRun: false };
    } catch (error) {
      failed = true;
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release(failed);
    }
  });
}

/** Deletes the matching dead letters (outbox) or dead rows (inbox) for good. */
export async function purgeDeadLetters(
  pool: pg.Pool,
  target: DeadLetterTarget,
  filter: DeadLetterFilter,
  options: ChangeOptions = {},
): Promise<DeadLetterChange> {
  return change(pool, target, filter, options, false, async (f) => {
    const sql =
      target.source === "inbox"
        ? purgeInboxDeadSql(inboxNames(target.schema ?? DEFAULT_SCHEMA), f)
        : purgeDeadLettersSql(outboxNames(target.schema ?? DEFAULT_SCHEMA), f);
    return { count: (await pool.query(sql, f.params)).rows[0].count as number, dryRun: false };
  });
}
