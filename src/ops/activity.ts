// The outbox's cumulative counters (rows written, rows claimed), the source of the dashboard's throughput chart: a
// caller reads them twice and divides the difference by the time between. See sql/ops/activity.ts for what they
// count and what they cannot tell.
import type pg from "pg";
import { schemaOption } from "../config/validate.js";
import { DEFAULT_SCHEMA, outboxNames } from "../sql/names.js";
import { TABLE_ACTIVITY_SQL } from "../sql/ops/activity.js";

export interface OutboxActivity {
  /** Rows inserted into the outbox table since the statistics were reset. */
  written: number;
  /** Rows deleted from it: claimed by a relay (published or dead-lettered; a claim rolled back counts too). */
  claimed: number;
}

/** The counters of the outbox table in `schema`; null when the table does not exist. Read-only. */
export async function outboxActivity(pool: pg.Pool, options: { schema?: string } = {}): Promise<OutboxActivity | null> {
  const names = outboxNames(schemaOption("schema", options.schema, DEFAULT_SCHEMA));
  const { rows } = await pool.query(TABLE_ACTIVITY_SQL, [names.outboxTable]);
  if (rows.length === 0) return null;
  return { written: Number(rows[0].inserted), claimed: Number(rows[0].deleted) };
}
