// One attempt of a batch: the second shape of the inbox's attempt cycle (attempt.ts is the first, and the one every
// retry goes through). Up to `batch.size` claimed rows of one batch handler, all first attempts:
//   claimed (each row: attempts + 1, leased) -> handleBatch(messages) + ONE completion statement for the batch, in ONE
//     interactive transaction of the user's Prisma client -> COMMIT -> "handled" for each message
//   handleBatch throws, runs past handlerTimeoutMs, or a row's lease ran out -> ROLLBACK (nothing of the batch
//     commits) -> split: each row due at once with its claim's attempt taken back and the batch's error stored
//     (sql/inbox/batch.ts); their ids go back to the processor, which claims them again and, since an attempt failed
//     before, runs each ALONE through attempt.ts: one bad message fails only itself, and attempts are counted per
//     message there (backoff, dead after maxAttempts, the `dead` hook)
//   the process dies inside the batch -> nothing recorded: each row's lease runs out, its attempt stays counted, and
//     it comes back as a retry, so it runs alone
// Order: a claim takes only the head row of each ordering key (sql/inbox/claim.ts), so a batch holds at most one
// message per key, and a key's next message is claimed only once this batch committed: order holds across batches.
import type pg from "pg";
import { coerceError, InboxHandlerTimeoutError, LeaseLostError } from "../errors.js";
import { backoffDelay, sleep } from "../runtime/backoff.js";
import { completeInboxBatchSql, integerArrayLiteral, splitInboxBatchSql } from "../sql/inbox/batch.js";
import type { ClaimedInboxRow } from "../sql/inbox/claim.js";
import type { InboxNames } from "../sql/names.js";
import { withConsumerBatchSpan } from "../telemetry/tracing.js";
import { inboxMessageOf, type PrismaLike, untilAborted } from "./attempt.js";
import type { InboxEvent } from "./events.js";
import type { ResolvedHandler } from "./handler-options.js";
import type { ResolvedInboxOptions } from "./options.js";
import type { HandlerRegistry } from "./registry.js";

/** Tries to split a failed batch before giving up (its rows then come back when their lease runs out). */
const RECORD_ATTEMPTS = 3;

interface RawTx {
  $executeRawUnsafe(sql: string, ...values: unknown[]): Promise<number>;
}

/** Whether a claimed row of a batch handler may join a batch: a first attempt that nothing failed before. */
export function batchable(row: ClaimedInboxRow): boolean {
  return row.attempts === 1 && row.failed_before !== true;
}

/** Runs batches of claimed rows; one per processor, shared by its slots. */
export class InboxBatchAttempts {
  readonly #pool: pg.Pool;
  readonly #prisma: PrismaLike;
  readonly #options: ResolvedInboxOptions;
  readonly #emit: (event: InboxEvent) => void;
  readonly #sql: { complete: string; split: string };

  constructor(
    pool: pg.Pool,
    prisma: PrismaLike,
    options: ResolvedInboxOptions,
    names: InboxNames,
    emit: (event: InboxEvent) => void,
  ) {
    this.#pool = pool;
    this.#prisma = prisma;
    this.#options = options;
    this.#emit = emit;
    this.#sql = { complete: completeInboxBatchSql(names), split: splitInboxBatchSql(names) };
  }

  /**
   * One batch of `handler`'s claimed rows; `controller` aborts it (its timeout, or stop() past its deadline).
   * Resolves with the ids of the rows split to run alone (none when the batch committed).
   */
  async run(handler: ResolvedHandler, rows: ClaimedInboxRow[], controller: AbortController): Promise<string[]> {
    const { handlerTimeoutMs, logger } = this.#options;
    const handleBatch = handler.handleBatch!;
    const messages = rows.map(inboxMessageOf);
    const ids = integerArrayLiteral(rows.map((r) => r.id));
    const attempts = integerArrayLiteral(rows.map((r) => r.attempts));
    const started = performance.now();
    const timer = setTimeout(
      () =>
        controller.abort(
          new InboxHandlerTimeoutError(`batch handler "${handler.name}" ran past ${handlerTimeoutMs} ms`),
        ),
      handlerTimeoutMs,
    );
    try {
      await withConsumerBatchSpan(handler.name, messages, () =>
        this.#prisma.$transaction(
          async (tx) => {
            await untilAborted(handleBatch(messages, tx, { signal: controller.signal }), controller.signal);
            const count = await (tx as RawTx).$executeRawUnsafe(this.#sql.complete, ids, attempts);
            if (count !== rows.length) {
              throw new LeaseLostError(
                `${rows.length - count} of a batch's ${rows.length} inbox rows were taken over by another processor`,
              );
            }
          },
          { timeout: handlerTimeoutMs + 5_000 },
        ),
      );
    } catch (thrown) {
      const error = coerceError(thrown);
      logger.warn("batch handler failed; its messages are retried one by one", {
        handler: handler.name,
        messages: rows.length,
        error: error.message,
      });
      return this.#split(rows, ids, attempts, error);
    } finally {
      clearTimeout(timer);
    }
    const durationMs = performance.now() - started;
    for (const row of rows) {
      const n = row.attempts;
      this.#emit({
        type: "handled",
        messageId: row.message_id ?? "",
        handler: row.handler,
        attempts: n,
        attempt: n,
        durationMs,
      });
    }
    return [];
  }

  /** The split of a failed batch (sql/inbox/batch.ts); retried a few times, as attempt.ts records a failure. */
  async #split(rows: ClaimedInboxRow[], ids: string, attempts: string, error: Error): Promise<string[]> {
    const text = `batch of ${rows.length} failed, retried one by one: ${error.name}: ${error.message}`.slice(0, 8_000);
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.#pool.query<{ id: string }>(this.#sql.split, [ids, attempts, text]);
        return result.rows.map((r) => r.id);
      } catch (thrown) {
        if (attempt >= RECORD_ATTEMPTS) {
          this.#options.logger.error("splitting a failed batch failed; its rows come back when their lease runs out", {
            handler: rows[0]?.handler,
            messages: rows.length,
            error: coerceError(thrown).message,
          });
          return [];
        }
        await sleep(backoffDelay(attempt, 50, 500));
      }
    }
  }
}

/** What the processor starts in its free slots: a row alone, or a batch of one batch handler's rows. */
export interface PlannedStart {
  rows: ClaimedInboxRow[];
  /** The batch handler, for a batch. */
  batch?: ResolvedHandler;
}

/**
 * Plans the starts of buffered rows (oldest first) in `free` slots: a row alone, unless it is a batch handler's
 * first attempt (`batchable`); then it and the next such rows of its handler, up to `batch.size`, start as one batch
 * once that many are there or the oldest waited `batch.waitMs` (or the inbox is stopping). A batch still filling
 * waits, and the rows behind it go on; `fillAt` is when the first filling batch's wait ends. Pure: the processor's
 * buffer in, what is left of it out.
 */
export function planStarts<T extends { row: ClaimedInboxRow; claimedAt: number }>(
  ready: readonly T[],
  registry: HandlerRegistry,
  free: number,
  now: number,
  stopping: boolean,
): { starts: PlannedStart[]; rest: T[]; fillAt: number } {
  const starts: PlannedStart[] = [];
  const started = new Set<number>();
  const filling = new Set<string>();
  let fillAt = Number.POSITIVE_INFINITY;
  for (let i = 0; i < ready.length && starts.length < free; i++) {
    if (started.has(i)) continue;
    const { row, claimedAt } = ready[i]!;
    const handler = registry.byName(row.handler);
    if (!handler?.batch || !batchable(row)) {
      started.add(i);
      starts.push({ rows: [row] });
      continue;
    }
    if (filling.has(row.handler)) continue;
    const { size, waitMs } = handler.batch;
    const taken: number[] = [];
    for (let j = i; j < ready.length && taken.length < size; j++) {
      const other = ready[j]!.row;
      if (!started.has(j) && other.handler === row.handler && batchable(other)) taken.push(j);
    }
    if (taken.length < size && now - claimedAt < waitMs && !stopping) {
      filling.add(row.handler);
      fillAt = Math.min(fillAt, claimedAt + waitMs);
      continue;
    }
    for (const j of taken) started.add(j);
    starts.push({ rows: taken.map((j) => ready[j]!.row), batch: handler });
  }
  return { starts, rest: ready.filter((_, j) => !started.has(j)), fillAt };
}
