// What the status endpoint serves: a request's row, mapped to a typed object.
import type { RequestRow } from "../sql/requests/read.js";

/** pending -> running -> succeeded | failed; pending or running -> cancelled. Never back from the last three. */
export type RequestState = "pending" | "running" | "succeeded" | "failed" | "cancelled";

/** Problem details (RFC 9457), as a failed request's `error` holds them. */
export interface ProblemDetails {
  type: string;
  title: string;
  status?: number;
  detail?: string;
  instance?: string;
  [extension: string]: unknown;
}

export interface RequestStatus<TInput = unknown, TResult = unknown> {
  id: string;
  type: string;
  status: RequestState;
  input: TInput;
  /** Set once succeeded. */
  result: TResult | undefined;
  /** Set once failed: the last attempt's error. */
  error: ProblemDetails | undefined;
  progress: { percent: number; message: string | undefined };
  idempotencyKey: string | undefined;
  /** Attempts of the work started so far. */
  attempts: number;
  createdAt: Date;
  startedAt: Date | undefined;
  updatedAt: Date;
  completedAt: Date | undefined;
  /** When the finished request will be deleted. */
  expiresAt: Date | undefined;
}

export function toRequestStatus(row: RequestRow): RequestStatus {
  return {
    id: row.id,
    type: row.type,
    status: row.status as RequestState,
    input: row.input,
    result: row.status === "succeeded" ? row.result : undefined,
    error: (row.error ?? undefined) as ProblemDetails | undefined,
    progress: { percent: Number(row.progress), message: row.progress_message ?? undefined },
    idempotencyKey: row.idempotency_key ?? undefined,
    attempts: row.attempts,
    createdAt: row.created_at,
    startedAt: row.started_at ?? undefined,
    updatedAt: row.updated_at,
    completedAt: row.completed_at ?? undefined,
    expiresAt: row.expires_at ?? undefined,
  };
}
