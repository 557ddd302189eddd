import type { RequestNames } from "../names.js";

/** The status resource: one row by primary key (the id as text; the caller maps the row). $1: id. */
export function readRequestSql(names: RequestNames): string {
  return `
SELECT id::text AS id, type, status, input, result, error, progress, progress_message, idempotency_key, attempts,
       created_at, started_at, updated_at, completed_at, expires_at
FROM ${names.requestTable} WHERE id = $1::uuid`;
}

/** A request row as readRequestSql returns it. */
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
