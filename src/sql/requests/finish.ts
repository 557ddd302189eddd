import type { RequestNames } from "../names.js";

// The final transitions. Each is guarded by `status IN ('pending', 'running')`: the first to commit wins and the
// others match nothing, so a result is written once and a finished request never changes again. Each sets when the
// request expires: completion + the retention (ms), after which the purge deletes it. Times are clock_timestamp(), not
// now(): the handler's transaction began before the work (and its `running` mark, committed on its own) started, and a
// request must not look completed before it started.

/**
 * The result, in the handler's transaction (the one that marks the inbox row processed): both commit, or neither,
 * so a job re-run after a crash writes its result once. $1: id, $2: result as JSON text, $3: retention ms.
 */
export function completeRequestSql(names: RequestNames): string {
  return `
UPDATE ${names.requestTable}
SET status = 'succeeded', result = $2::jsonb, progress = 100, updated_at = clock_timestamp(),
    completed_at = clock_timestamp(), expires_at = clock_timestamp() + make_interval(secs => $3::float8 / 1000)
WHERE id = $1::uuid AND status IN ('pending', 'running')`;
}

/**
 * The failure, in the transaction that marks the inbox row dead (after the last attempt).
 * $1: id, $2: problem details as JSON text, $3: retention ms.
 */
export function failRequestSql(names: RequestNames): string {
  return `
UPDATE ${names.requestTable}
SET status = 'failed', error = $2::jsonb, updated_at = clock_timestamp(), completed_at = clock_timestamp(),
    expires_at = clock_timestamp() + make_interval(secs => $3::float8 / 1000)
WHERE id = $1::uuid AND status IN ('pending', 'running')`;
}

/**
 * Cancellation: a pending request then never starts (startRequestSql matches nothing), a running one's work sees
 * its signal aborted (its progress reports and the poll of requestStateSql find it no longer running).
 * $1: id, $2: retention ms.
 */
export function cancelRequestSql(names: RequestNames): string {
  return `
UPDATE ${names.requestTable}
SET status = 'cancelled', updated_at = clock_timestamp(), completed_at = clock_timestamp(),
    expires_at = clock_timestamp() + make_interval(secs => $2::float8 / 1000)
WHERE id = $1::uuid AND status IN ('pending', 'running')`;
}
