import { type OutboxNames, quoteIdentifier } from "../names.js";

/**
 * LISTEN on the schema's channel, and on the connection's own check channel (see below). The channel is an
 * identifier here (quoted: it may contain a dot) and a string in the writers' pg_notify(); both spell the same name,
 * so they meet. LISTEN takes no bind parameters, hence the text. It holds for the session, so it needs a session of
 * its own: a transaction-mode pooler would lose it.
 */
export function listenSql(names: OutboxNames, checkChannel: string): string {
  return `LISTEN ${quoteIdentifier(names.notifyChannel)}; LISTEN ${quoteIdentifier(checkChannel)}`;
}

/**
 * A channel of one LISTEN connection's own, for its liveness check: it sends itself a NOTIFY there and waits for it
 * to come back. This proves more than `SELECT 1` would: the session still exists, still LISTENs, and notifications
 * still reach it (through a transaction-mode pooler they do not: the NOTIFY runs on another server connection).
 * A channel of its own, not the writers' one, so that checks never wake other relays; well within 63 bytes.
 */
export function listenCheckChannel(): string {
  return `prisma_outbox_check_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
}

/** The check's NOTIFY; $1: the check channel. pg_notify, so that the channel is a parameter, not text. */
export const NOTIFY_CHECK_SQL = "SELECT pg_notify($1, '')";
