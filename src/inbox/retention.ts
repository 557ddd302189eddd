// Retention of the inbox: processed rows are the dedupe records; past the window they are deleted by the shared purge
// loop (runtime/purge-loop.ts), on a timer of the inbox. What is the inbox's own: the statement and its table.
import type pg from "pg";
import type { Logger } from "../runtime/logger.js";
import { PurgeLoop } from "../runtime/purge-loop.js";
import { purgeInboxMessagesSql } from "../sql/inbox/purge.js";
import type { InboxNames } from "../sql/names.js";

export class Retention extends PurgeLoop {
  constructor(
    pool: pg.Pool,
    options: { retentionMs: number; purgeIntervalMs: number; purgeBatchSize: number },
    names: InboxNames,
    logger: Logger,
    onPurged: (count: number) => void,
  ) {
    const sql = purgeInboxMessagesSql(names);
    super({
      batch: async () => {
        const { rows } = await pool.query<{ deleted: number }>(sql, [options.retentionMs, options.purgeBatchSize]);
        return rows[0]?.deleted ?? 0;
      },
      batchSize: options.purgeBatchSize,
      intervalMs: options.purgeIntervalMs,
      what: "expired inbox dedupe records",
      logger,
      onPurged,
    });
  }
}
