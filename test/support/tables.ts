// Row counts the tests read: what is left in the outbox, what the inbox stored, what handlers wrote.
import type pg from "pg";

/** Rows in `table` (a quoted or plain name, as written in SQL). */
export async function countRows(pool: pg.Pool, table: string): Promise<number> {
  return Number((await pool.query(`SELECT count(*) FROM ${table}`)).rows[0].count);
}

/** Rows in the outbox: committed and not yet deleted by a committed claim. */
export const outboxCount = (pool: pg.Pool) => countRows(pool, "outbox_message");

/** Rows the test handlers wrote, one per handling. */
export const effectCount = (pool: pg.Pool) => countRows(pool, '"Effect"');
