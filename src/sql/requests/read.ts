import { REQUEST_TABLE } from "../names.js";

/** The status resource: one row by primary key (the id as text; the caller maps the row). $1: id. */
export const READ_REQUEST_SQL = `
SELECT id::text AS id, type, status, input, result, error, progress, progress_message, idempotency_key, attempts,
       created_at, started_at, updated_at, completed_at, expires_at
FROM ${REQUEST_TABLE} WHERE id = $1::uuid`;

/** A request row as READ_REQUEST_SQL returns it. */
export interface RequestRow {
  id: string;
  type: string;
  status: string;
  input: unknown;
  result: unknown;
  error: unknown;
  progress: number;
  progress_message: string | null;
  idempotency_key: string | null;
  attempts: number;
  created_at: Date;
  started_at: Date | null;
  updated_at: Date;
  completed_at: Date | null;
  expires_at: Date | null;
}

/**
 * Retention: deletes expired requests (finished, and past completion + the retention), a small batch per statement;
 * the caller loops while a batch comes back full, pausing between, so no statement holds many locks or writes a
 * burst of WAL. The expires_at index finds the oldest first; unfinished requests (expires_at NULL) are never touched.
 * $1: batch size. Returns the number deleted.
 */
export const PURGE_REQUESTS_SQL = `
WITH purged AS (
  DELETE FROM ${REQUEST_TABLE} WHERE id IN (
    SELECT id FROM ${REQUEST_TABLE} WHERE expires_at < now() ORDER BY expires_at LIMIT $1::int
  )
  RETURNING 1
)
SELECT count(*)::int AS deleted FROM purged`;
