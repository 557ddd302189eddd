import type { InboxNames } from "../names.js";

/**
 * Marks a row processed, inside the handler's own transaction, so the handler's writes and the mark commit together.
 * The guard `status = 'pending' AND attempts = $2` holds only while the claim is still this processor's: after a lease
 * ran out and another processor re-claimed the row (attempts moved on), or after it was processed, it matches nothing
 * and the caller rolls the handler's transaction back. Run through Prisma's $executeRawUnsafe: casts make the text
 * and number parameters typed. $1: id, $2: attempts as claimed.
 */
export function completeInboxMessageSql(names: InboxNames): string {
  return `
UPDATE ${names.inboxTable} SET status = 'processed', processed_at = ${names.now}, last_error = NULL
WHERE id = $1::bigint AND status = 'pending' AND attempts = $2::int`;
}
