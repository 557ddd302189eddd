// What a statement costs, read from its plan: the claims' tests bound the buffers a claim touches, so that its cost
// does not grow with rows that are not due.
import type pg from "pg";

export interface PlanCost {
  /** Shared buffers hit plus read. */
  buffers: number;
  /** Rows the statement returned. */
  rows: number;
  /** The whole plan as JSON, to print when a bound fails. */
  plan: string;
}

/**
 * Runs `sql` under EXPLAIN (ANALYZE, BUFFERS) after `setup` (e.g. SET LOCAL planner switches) in a transaction that
 * rolls back: nothing it does is kept.
 */
export async function buffersOf(pool: pg.Pool, sql: string, setup = ""): Promise<PlanCost> {
  const c = await pool.connect();
  try {
    await c.query("BEGIN");
    if (setup) await c.query(setup);
    const r = await c.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`);
    const plan = r.rows[0]["QUERY PLAN"][0].Plan;
    return {
      buffers: plan["Shared Hit Blocks"] + plan["Shared Read Blocks"],
      rows: plan["Actual Rows"],
      plan: JSON.stringify(plan),
    };
  } finally {
    await c.query("ROLLBACK");
    c.release();
  }
}
