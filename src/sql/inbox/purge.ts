import type { InboxNames } from "../names.js";

/**
 * Retention: deletes processed rows older than the dedupe window, a small batch at a time (the caller loops while a
 * batch comes back full, pausing between), so no statement holds many locks or writes a burst of WAL. The
 * processed_at index finds the oldest first; pending and dead rows are never touched. processed_at was written with the
 * same clock (names.now, complete.ts), so the window is measured on one clock.
 * $1: window ms, $2: batch size. Returns the number deleted.
 */
export function purgeInboxMessagesSql(names: InboxNames): string {
  return `
WITH purged AS (
  DELETE FROM ${names.inboxTable} WHERE id IN (
    SELECT id FROM ${names.inboxTable}
    WHERE processed_at < ${names.now} - make_interval(secs => $1::float8 / 1000) AND status = 'processed'
    ORDER BY processed_at LIMIT $2
  )
  RETURNING 1
)
SELECT count(*)::int AS deleted FROM purged`;
}
