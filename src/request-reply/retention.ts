// Retention of finished requests: deleted once expired (completion + retentionMs) by the shared purge loop
// (runtime/purge-loop.ts). What is request-reply's own: the statement, its table, and the client it runs on.
import { PurgeLoop } from "../runtime/purge-loop.js";
import { requestNames } from "../sql/names.js";
import { purgeRequestsSql } from "../sql/requests/purge.js";
import type { RawClient } from "./handler.js";
import type { ResolvedRequestsOptions } from "./options.js";

export class RequestRetention extends PurgeLoop {
  constructor(prisma: RawClient, options: ResolvedRequestsOptions) {
    const sql = purgeRequestsSql(requestNames(options.schema));
    super({
      batch: async () => {
        const rows = await prisma.$queryRawUnsafe<Array<{ deleted: number }>>(sql, options.purgeBatchSize);
        return Number(rows[0]?.deleted ?? 0);
      },
      batchSize: options.purgeBatchSize,
      intervalMs: options.purgeIntervalMs,
      what: "expired requests",
      logger: options.logger,
      onPurged: (count) => options.logger.info(`purged ${count} expired requests`),
    });
  }
}
