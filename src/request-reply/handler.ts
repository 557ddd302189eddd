// The inbox handler that runs the work of one request type. One attempt:
//   start: UPDATE -> running (its own short transaction: pollers see it), reading the input; a request already
//          finished (cancelled while pending) or gone matches nothing: the work never runs, the message is processed.
//   work:  the user's function, with the handler's transaction, an AbortSignal (the inbox's timeout or stop, or a
//          cancellation noticed by a progress report or by the status poll) and progress(), each report committed on
//          its own.
//   end:   result + succeeded in the handler's transaction, which also marks the inbox row processed: both commit or
//          neither, so a re-run after a crash writes the result once. Guarded by the status: if the request was
//          cancelled meanwhile, nothing is written and the attempt fails (its writes roll back); the retry finds the
//          request finished and does nothing.
//   dead:  after the inbox's last attempt, failed + problem details in the transaction that marks the row dead.

import { coerceError, RequestCancelledError, RequestInputError } from "../errors.js";
import type { BatchOptions, HandlerContext, InboxMessage } from "../inbox/types.js";
import { serializePayload } from "../message/message.js";
import { requestNames } from "../sql/names.js";
import { completeRequestSql, failRequestSql } from "../sql/requests/finish.js";
import { reportProgressSql, requestStateSql, startRequestSql } from "../sql/requests/progress.js";
import type { ResolvedRequestsOptions } from "./options.js";
import type { ProblemDetails } from "./status.js";

/** The raw-query surface of a Prisma client or transaction client that the handler uses. */
export interface RawClient {
  $queryRawUnsafe<T = unknown>(sql: string, ...values: unknown[]): Promise<T>;
  $executeRawUnsafe(sql: string, ...values: unknown[]): Promise<number>;
}

/** What the work function gets besides the request's input. */
export interface RequestContext<TTx> {
  requestId: string;
  type: string;
  /** The inbox's attempt number, from 1: a re-run after a crash or a failure has a higher one. */
  attempt: number;
  /**
   * The handler's transaction: writes made with it commit with the result (or roll back with a failure or a
   * cancellation). Keep long computations out of it where you can: it is open for the whole run.
   */
  tx: TTx;
  /** Aborted when the request is cancelled, at the inbox's handler timeout, or when the inbox stops past its deadline. */
  signal: AbortSignal;
  /**
   * Reports progress, 0 to 100 (rounded), with an optional message; committed at once, so pollers see it. Throws a
   * RequestCancelledError (and aborts `signal`) when the request was cancelled meanwhile.
   */
  progress(percent: number, message?: string): Promise<void>;
}

export type RequestWork<TInput, TResult, TTx> = (input: TInput, context: RequestContext<TTx>) => Promise<TResult>;

/** The message that starts a request's work (what `submit` enqueues). */
export interface RequestMessage {
  requestId: string;
  type: string;
}

/** The problem details stored for a request whose last attempt failed. */
export function problemOf(error: Error, attempts: number): ProblemDetails {
  return {
    type: "about:blank",
    title: "The request failed",
    status: 500,
    detail: `${error.name}: ${error.message}`.slice(0, 2_000),
    attempts,
  };
}

export function requestHandler<TInput, TResult, TTx>(
  prisma: RawClient,
  options: ResolvedRequestsOptions,
  type: string,
  work: RequestWork<TInput, TResult, TTx>,
  batch?: BatchOptions,
) {
  const names = requestNames(options.schema);
  const sql = {
    start: startRequestSql(names),
    state: requestStateSql(names),
    progress: reportProgressSql(names),
    complete: completeRequestSql(names),
    fail: failRequestSql(names),
  };
  const requestIdOf = (message: InboxMessage) =>
    (message.payload as Partial<RequestMessage> | null)?.requestId ?? message.messageId;

  async function handle(message: InboxMessage, tx: TTx, { signal }: HandlerContext): Promise<void> {
    const requestId = requestIdOf(message);
    const started = await prisma.$queryRawUnsafe<Array<{ input: TInput }>>(sql.start, requestId, message.attempt);
    if (started.length === 0) {
      options.logger.info(`request ${requestId} is finished or gone: its work does not run`);
      return;
    }
    const cancel = new AbortController();
    const stopped = (why: string) => {
      if (!cancel.signal.aborted) cancel.abort(new RequestCancelledError(`request ${requestId} ${why}`, requestId));
    };
    // Another process cancels by updating the row: polled here, and noticed at once by progress reports.
    const poll = setInterval(() => {
      prisma.$queryRawUnsafe<Array<{ status: string }>>(sql.state, requestId).then(
        (rows) => {
          if (rows[0]?.status !== "running") stopped(`is ${rows[0]?.status ?? "gone"}: cancelled while running`);
        },
        (error) =>
          options.logger.warn(`reading the status of request ${requestId} failed: ${coerceError(error).message}`),
      );
    }, options.cancelCheckIntervalMs);
    const combined = AbortSignal.any([signal, cancel.signal]);
    const context: RequestContext<TTx> = {
      requestId,
      type,
      attempt: message.attempt,
      tx,
      signal: combined,
      async progress(percent, text) {
        if (typeof percent !== "number" || !(percent >= 0 && percent <= 100)) {
          throw new RequestInputError(`Expected progress to be a number from 0 to 100, got ${String(percent)}.`);
        }
        if (text !== undefined && typeof text !== "string") {
          throw new RequestInputError(`Expected the progress message to be a string, got ${typeof text}.`);
        }
        if (combined.aborted) throw combined.reason;
        const count = await prisma.$executeRawUnsafe(sql.progress, requestId, Math.round(percent), text ?? null);
        if (count === 0) {
          stopped("is no longer running: cancelled");
          throw cancel.signal.reason;
        }
      },
    };
    try {
      const result = await work(started[0]!.input, context);
      const json = serializePayload(result === undefined ? null : result, "request result");
      const written = await (tx as unknown as RawClient).$executeRawUnsafe(
        sql.complete,
        requestId,
        json,
        options.retentionMs,
      );
      if (written !== 1) {
        // Cancelled while the work ran (a work that did not watch its signal): its writes roll back with this throw.
        throw new RequestCancelledError(`request ${requestId} was cancelled while its work ran`, requestId);
      }
    } finally {
      clearInterval(poll);
    }
  }

  async function dead(message: InboxMessage, tx: TTx, error: Error): Promise<void> {
    const requestId = requestIdOf(message);
    await (tx as unknown as RawClient).$executeRawUnsafe(
      sql.fail,
      requestId,
      JSON.stringify(problemOf(error, message.attempt)),
      options.retentionMs,
    );
  }

  // `pattern` with no wildcard takes exactly this routing key (the type is checked to have none).
  const pattern = `${options.routingKeyPrefix}${type}`;
  if (batch === undefined) return { pattern, handle, dead };
  // A batch: each request as one attempt would run it, one after the other in the batch's transaction (one
  // transaction cannot run two statements at once), each result written in it. One that throws rolls the batch back,
  // and the inbox retries each request alone (through this same function, with a one-message array).
  async function handleBatch(messages: InboxMessage[], tx: TTx, context: HandlerContext): Promise<void> {
    for (const message of messages) await handle(message, tx, context);
  }
  return { pattern, handleBatch, batch, dead };
}
