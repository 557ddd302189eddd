import type { InboxNames } from "../names.js";

// The two statements of a batch handler's batch (inbox/batch-attempt.ts). Both take the batch as two parallel arrays
// written as PostgreSQL array literals in text parameters ('{1,2,3}'): one parameter per array whatever the batch's
// size, the same text through Prisma's $executeRawUnsafe and through pg, and no dependence on how a driver adapter
// maps a JavaScript array. unnest() pairs each id with the attempts value its claim returned.

/**
 * Marks a whole batch processed in ONE statement, inside the handler's transaction: the handler's writes and the
 * marks commit together, or roll back together. The guard is completion's (complete.ts), per row: a row whose lease
 * ran out and that another processor re-claimed (attempts moved on) or that is no longer pending matches nothing;
 * the caller compares the count with the batch's size and rolls the whole batch back when a row is missing (its
 * handling belongs to the new holder). One UPDATE of N rows instead of N: one round trip and one plan inside a
 * transaction whose cost is mostly round trips (bench:inbox (c) with batches).
 * $1: ids ('{...}'), $2: attempts as claimed ('{...}', same order).
 */
export function completeInboxBatchSql(names: InboxNames): string {
  return `
UPDATE ${names.inboxTable} m SET status = 'processed', processed_at = ${names.now}, last_error = NULL
FROM unnest($1::text::bigint[], $2::text::int[]) AS r(id, attempts)
WHERE m.id = r.id AND m.status = 'pending' AND m.attempts = r.attempts`;
}

/**
 * A batch that threw (its transaction rolled back: nothing of it committed) is split: every row becomes due at once,
 * its claim's attempt taken back, with the batch's error stored. The error marks the row: its next claim returns
 * `failed_before` and the processor runs it alone, through the one-message path (attempt.ts), which counts its
 * attempts and makes it dead after `maxAttempts`. Taking the attempt back is what makes attempts count per message:
 * the batch's failure is not known to be any one message's, so it is counted against none; each message's own
 * attempts are counted when it runs alone. (A crash inside a batch still counts one attempt for each of its rows,
 * as for any claimed row, since nothing runs this statement then.) Same guard as completion.
 * $1: ids ('{...}'), $2: attempts as claimed ('{...}'), $3: error text.
 */
export function splitInboxBatchSql(names: InboxNames): string {
  return `
UPDATE ${names.inboxTable} m SET attempts = m.attempts - 1, available_at = ${names.now}, last_error = $3
FROM unnest($1::text::bigint[], $2::text::int[]) AS r(id, attempts)
WHERE m.id = r.id AND m.status = 'pending' AND m.attempts = r.attempts
RETURNING m.id::text AS id`;
}

/** A PostgreSQL array literal of integers (ids as text, or numbers), for the statements above. */
export function integerArrayLiteral(values: readonly (string | number)[]): string {
  for (const v of values) {
    if (!/^-?\d+$/.test(String(v))) throw new TypeError(`Expected an integer, got ${String(v)}`);
  }
  return `{${values.join(",")}}`;
}
