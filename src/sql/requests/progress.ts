import type { RequestNames } from "../names.js";

// The work's transitions that must be seen while it runs: each its own short autocommit statement, outside the
// handler's transaction (whose writes nobody sees before it commits). Each is guarded by the status it moves from,
// so a request never goes back from succeeded, failed or cancelled, whatever runs late.

/**
 * Marks a request running at the start of an attempt and returns its input. Matches nothing when the request is
 * finished (cancelled before it started: the work never runs) or gone (expired and purged).
 * $1: id, $2: the inbox's attempt number.
 */
export function startRequestSql(names: RequestNames): string {
  return `
UPDATE ${names.requestTable}
SET status = 'running', started_at = coalesce(started_at, now()), updated_at = now(), attempts = $2::int
WHERE id = $1::uuid AND status IN ('pending', 'running')
RETURNING input`;
}

/**
 * A progress report. Matches nothing once the request is no longer running: the caller then aborts the work's signal
 * (cancelled meanwhile). $1: id, $2: percent (0..100), $3: message or null.
 */
export function reportProgressSql(names: RequestNames): string {
  return `
UPDATE ${names.requestTable} SET progress = $2::smallint, progress_message = $3::text, updated_at = now()
WHERE id = $1::uuid AND status = 'running'`;
}

/** The status alone, polled while the work runs to notice a cancellation from another process. $1: id. */
export function requestStateSql(names: RequestNames): string {
  return `SELECT status FROM ${names.requestTable} WHERE id = $1::uuid`;
}
