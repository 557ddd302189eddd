// Where the end-to-end latency of bench:inbox (e) goes, message by message, read off the inbox table's own timestamps:
// received_at is the start of the receiver's INSERT (its own transaction: the row's default now()), processed_at the
// start of the handler's transaction (complete.ts writes now(), the transaction's start, i.e. its BEGIN). Both are
// the database's clock, which is this machine's clock, at millisecond precision (Timestamptz(3)).
import type pg from "pg";
import { summarize } from "./support.js";

export type Stages = Array<[string, ReturnType<typeof summarize>]>;

/**
 * The three stages of each message whose outbox COMMIT (`committedAt`) and handler COMMIT (`handledAt`) the bench
 * saw, in epoch ms: commit -> stored (relay claim, publish, broker, delivery, the receiver's turn), stored -> handler
 * BEGIN (INSERT + COMMIT, hand-off to the processor, a free slot, a pooled connection, BEGIN), handler BEGIN ->
 * handled (the handler's statement, the processed-mark, COMMIT, the event).
 */
export async function e2eStages(
  pool: pg.Pool,
  committedAt: Map<string, number>,
  handledAt: Map<string, number>,
): Promise<Stages> {
  const { rows } = await pool.query<{ message_id: string; stored: number; begun: number }>(
    `SELECT message_id::text AS message_id, (extract(epoch FROM received_at) * 1000)::float8 AS stored,
       (extract(epoch FROM processed_at) * 1000)::float8 AS begun
     FROM inbox_message WHERE status = 'processed' AND message_id = ANY($1::text[])`,
    [[...committedAt.keys()]],
  );
  const toStored: number[] = [];
  const toBegin: number[] = [];
  const toHandled: number[] = [];
  for (const { message_id: id, stored, begun } of rows) {
    toStored.push(stored - committedAt.get(id)!);
    toBegin.push(begun - stored);
    toHandled.push(handledAt.get(id)! - begun);
  }
  return [
    ["stage: outbox commit -> stored (relay, broker, receive)", summarize(toStored)],
    ["stage: stored -> handler BEGIN (INSERT, COMMIT, hand-off, slot)", summarize(toBegin)],
    ["stage: handler BEGIN -> handler commit seen", summarize(toHandled)],
  ];
}
