// The facts behind `prisma-outbox status`, as a library call: `outboxStatus(pool)` for an app that wants to show them
// (an admin page, a probe). Read-only; a table that does not exist is reported as absent, not thrown.
import type pg from "pg";
import { integerOption, schemaOption } from "../config/validate.js";
import { UNDEFINED_TABLE } from "../sql/check-table.js";
import { DEFAULT_SCHEMA, inboxNames, outboxNames } from "../sql/names.js";
import {
  CONNECTED_SQL,
  deadLettersByErrorSql,
  deadLettersByExchangeSql,
  deadLetterTotalSql,
  inboxDeadByErrorSql,
  inboxDeadByHandlerSql,
  inboxStatusCountsSql,
  outboxStatusCountsSql,
} from "../sql/ops/status.js";

/** The application names the relay and the inbox give their own sessions (see src/relay, src/inbox). */
export const APPLICATION_NAMES = {
  relay: "prisma-outbox relay",
  listener: "prisma-outbox listener",
  inbox: "prisma-outbox inbox",
} as const;

export interface OutboxStatus {
  schema: string;
  outbox:
    | { present: false }
    | {
        present: true;
        /** Rows due now. */
        due: number;
        /** Rows not due yet: retry backoff, or a delay the writer asked for. */
        deferred: number;
        /** How long the oldest due row has been due, in ms; null when nothing is due. */
        oldestDueAgeMs: number | null;
        deadLetters: {
          total: number;
          byExchange: Array<{ exchange: string; count: number; lastFailedAt: string }>;
          byError: Array<{ error: string; count: number }>;
        };
      };
  /** Sessions connected to this database under the relay's and the inbox's application names. */
  connected: {
    /** Relay batch sessions (a relay holds up to `concurrency` + 1 of them). */
    relaySessions: number;
    /** LISTEN sessions: one per relay that listens, so the number of listening relays. */
    listenerSessions: number;
    /** Inbox sessions (an inbox holds up to 4). */
    inboxSessions: number;
  };
  inbox:
    | { present: false }
    | {
        present: true;
        due: number;
        /** Pending, not due: leased by a processor running the handler, or waiting for a retry's backoff. */
        deferred: number;
        /** Pending rows that failed at least once. */
        retrying: number;
        /** Deliveries no handler took yet, waiting for one (`unhandledGraceMs`: docs/inbox.md#rolling-deploys). */
        waiting: number;
        processed: number;
        oldestDueAgeMs: number | null;
        dead: {
          total: number;
          /** Handler '' holds invalid deliveries (no message id, not JSON, no handler). */
          byHandler: Array<{ handler: string; count: number }>;
          byError: Array<{ error: string; count: number }>;
        };
      };
}

export interface StatusOptions {
  /** The PostgreSQL schema of the outbox tables and the inbox table. @defaultValue "public" */
  schema?: string;
  /** How many exchanges, handlers and errors to list, most frequent first. @defaultValue 5 */
  top?: number;
}

function isMissingTable(error: unknown): boolean {
  return (error as { code?: string })?.code === UNDEFINED_TABLE;
}

/** null when the table (or its schema) does not exist. */
async function orAbsent<T>(work: () => Promise<T>): Promise<T | null> {
  try {
    return await work();
  } catch (error) {
    if (isMissingTable(error)) return null;
    throw error;
  }
}

function age(ms: number | null): number | null {
  return ms === null ? null : Math.max(0, Math.round(ms));
}

/** Backlog, dead letters, connected workers, for the outbox and the inbox (both in `schema`). */
export async function outboxStatus(pool: pg.Pool, options: StatusOptions = {}): Promise<OutboxStatus> {
  const schema = schemaOption("schema", options.schema, DEFAULT_SCHEMA);
  const top = integerOption("top", options.top, 5, 1);
  const names = outboxNames(schema);
  const outbox = await orAbsent(async () => {
    const backlog = (await pool.query(outboxStatusCountsSql(names))).rows[0];
    const total = (await pool.query(deadLetterTotalSql(names))).rows[0].count as number;
    const byExchange = (await pool.query(deadLettersByExchangeSql(names), [top])).rows;
    const byError = (await pool.query(deadLettersByErrorSql(names), [top])).rows;
    return {
      present: true as const,
      due: backlog.due as number,
      deferred: backlog.deferred as number,
      oldestDueAgeMs: age(backlog.oldest_due_age_ms),
      deadLetters: {
        total,
        byExchange: byExchange.map((r) => ({
          exchange: r.exchange as string,
          count: r.count as number,
          lastFailedAt: (r.last_failed_at as Date).toISOString(),
        })),
        byError: byError.map((r) => ({ error: r.error as string, count: r.count as number })),
      },
    };
  });
  const sessions = new Map<string, number>(
    (await pool.query(CONNECTED_SQL, [Object.values(APPLICATION_NAMES)])).rows.map((r) => [
      r.application_name as string,
      r.sessions as number,
    ]),
  );
  const inbox = await orAbsent(async () => {
    const inboxTables = inboxNames(schema);
    const backlog = (await pool.query(inboxStatusCountsSql(inboxTables))).rows[0];
    const byHandler = (await pool.query(inboxDeadByHandlerSql(inboxTables), [top])).rows;
    const byError = (await pool.query(inboxDeadByErrorSql(inboxTables), [top])).rows;
    return {
      present: true as const,
      due: backlog.due as number,
      deferred: backlog.deferred as number,
      retrying: backlog.retrying as number,
      waiting: backlog.waiting as number,
      processed: backlog.processed as number,
      oldestDueAgeMs: age(backlog.oldest_due_age_ms),
      dead: {
        total: backlog.dead as number,
        byHandler: byHandler.map((r) => ({ handler: r.handler as string, count: r.count as number })),
        byError: byError.map((r) => ({ error: r.error as string, count: r.count as number })),
      },
    };
  });
  return {
    schema,
    outbox: outbox ?? { present: false },
    connected: {
      relaySessions: sessions.get(APPLICATION_NAMES.relay) ?? 0,
      listenerSessions: sessions.get(APPLICATION_NAMES.listener) ?? 0,
      inboxSessions: sessions.get(APPLICATION_NAMES.inbox) ?? 0,
    },
    inbox: inbox ?? { present: false },
  };
}
