import type { InboxNames } from "../names.js";

/**
 * Gives back rows the processor claimed ahead but never started (stop(), or they waited in its buffer too long for a
 * free slot): the claim's attempt is taken back and the row is due at once, as if never claimed. Nothing ran, so
 * nothing is undone. Same guard as completion (`status = 'pending' AND attempts = <as claimed>`): a row whose lease
 * ran out and that another processor claimed meanwhile is left alone. One statement for any number of rows:
 * unnest() pairs each id with its claimed attempts. $1: ids, $2: attempts as claimed (same order).
 */
export function releaseInboxMessagesSql(names: InboxNames): string {
  return `
UPDATE ${names.inboxTable} m SET attempts = m.attempts - 1, available_at = ${names.now}
FROM unnest($1::bigint[], $2::int[]) AS r(id, attempts)
WHERE m.id = r.id AND m.status = 'pending' AND m.attempts = r.attempts`;
}
