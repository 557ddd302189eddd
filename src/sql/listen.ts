import { type OutboxNames, quoteIdentifier } from "./names.js";

/**
 * LISTEN on the schema's channel. The channel is an identifier here (quoted: it may contain a dot) and a string in
 * the writers' pg_notify(); both spell the same name, so they meet. LISTEN takes no bind parameters, hence the text.
 * It holds for the session, so it needs a session of its own: a transaction-mode pooler would lose it.
 */
export function listenSql(names: OutboxNames): string {
  return `LISTEN ${quoteIdentifier(names.notifyChannel)}`;
}
