// A dashboard bound to a database URL, as the CLI runs it: its own small pool (ops-database.ts: named so that it is
// not counted among the relays and inboxes), the dashboard over it, and one close() for both.
import type { Logger } from "../../runtime/logger.js";
import { openOpsPool } from "../ops-database.js";
import { createDashboard, type Dashboard } from "./dashboard.js";

export interface ServedDashboard {
  dashboard: Dashboard;
  close(): Promise<void>;
}

export interface ServeDashboardOptions {
  databaseUrl: string;
  schema?: string | undefined;
  logger: Logger;
  allowActions: boolean;
  token: string | undefined;
  sampleIntervalMs?: number | undefined;
}

/** Throws an OutboxConfigError for options that cannot be used (a short token), before any connection is opened. */
export function serveDashboard(options: ServeDashboardOptions): ServedDashboard {
  const pool = openOpsPool(options.databaseUrl);
  let dashboard: Dashboard;
  try {
    dashboard = createDashboard({
      pool,
      schema: options.schema,
      logger: options.logger,
      allowActions: options.allowActions,
      token: options.token,
      sampleIntervalMs: options.sampleIntervalMs,
    });
  } catch (error) {
    void pool.end();
    throw error;
  }
  dashboard.start();
  options.logger.info("dashboard at /ui", {
    schema: dashboard.options.schema,
    actions: options.allowActions ? "allowed" : "read-only",
    access: options.token === undefined ? "loopback peers only (no token)" : "token required",
  });
  return {
    dashboard,
    async close() {
      dashboard.close();
      await pool.end().catch(() => {});
    },
  };
}
