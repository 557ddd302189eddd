import type { RequestNames } from "../names.js";

/**
 * Retention: deletes expired requests (finished, and past completion + the retention), a small batch per statement;
 * the caller loops while a batch comes back full, pausing between, so no statement holds many locks or writes a
 * burst of WAL. The expires_at index finds the oldest first; unfinished requests (expires_at NULL) are never touched.
 * $1: batch size. Returns the number deleted.
 */
export function purgeRequestsSql(names: RequestNames): string {
  return `
WITH purged AS (
  DELETE FROM ${names.requestTable} WHERE id IN (
    SELECT id FROM ${names.requestTable} WHERE expires_at < now() ORDER BY expires_at LIMIT $1::int
  )
  RETURNING 1
)
SELECT count(*)::int AS deleted FROM purged`;
}
