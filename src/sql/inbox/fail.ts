import type { InboxNames } from "../names.js";

/**
 * Records a failed attempt after the handler's transaction rolled back: the error, and either a later available_at
 * (backoff) or, when the attempt was the last allowed, status 'dead' (kept with its error until someone retries it).
 * Same guard as completion: a row re-claimed by another processor meanwhile is left alone.
 * $1: id, $2: attempts as claimed, $3: delay ms, $4: error text, $5: dead (boolean).
 */
export function failInboxMessageSql(names: InboxNames): string {
  return `
UPDATE ${names.inboxTable}
SET status = CASE WHEN $5::boolean THEN 'dead' ELSE 'pending' END,
    available_at = ${names.now} + make_interval(secs => $3::float8 / 1000),
    last_error = $4
WHERE id = $1::bigint AND status = 'pending' AND attempts = $2::int
RETURNING status`;
}
