// The dashboard's options, validated once when it is created (the shared checks of config/validate.ts). The command
// (`prisma-outbox dashboard`) and the worker's and the inbox's metrics port build them from their flags.
import type pg from "pg";
import {
  booleanOption,
  durationOption,
  integerOption,
  rejectUnknownKeys,
  schemaOption,
} from "../../config/validate.js";
import { OutboxConfigError } from "../../errors.js";
import type { Logger } from "../../runtime/logger.js";

export interface DashboardOptions {
  /** The database of the tables: a pool the caller opened and ends (the dashboard never ends it). */
  pool: pg.Pool;
  /** Schema of the outbox tables and the inbox table. @defaultValue "public" */
  schema?: string | undefined;
  /** Where every action (and every refused one) is logged. */
  logger: Logger;
  /** Whether retry and purge are offered; read-only otherwise. @defaultValue false */
  allowActions?: boolean | undefined;
  /**
   * When set, every API request needs `Authorization: Bearer <token>` (the page asks for it), and any peer may ask;
   * when not, only loopback peers are answered. At least 16 characters, no white space. Never logged.
   */
  token?: string | undefined;
  /** How often the backlog, lag and throughput are sampled. @defaultValue 5000 */
  sampleIntervalMs?: number | undefined;
  /** How many samples are kept in memory (the charts' width: 180 of 5 s is 15 minutes). @defaultValue 180 */
  samples?: number | undefined;
}

export interface ResolvedDashboardOptions {
  pool: pg.Pool;
  schema: string;
  logger: Logger;
  allowActions: boolean;
  token: string | undefined;
  sampleIntervalMs: number;
  samples: number;
}

const KNOWN = ["pool", "schema", "logger", "allowActions", "token", "sampleIntervalMs", "samples"];

/** A token is a secret: a refusal says what is wrong with it, never what it is. */
function tokenOption(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length < 16 || value.length > 1024 || /\s/.test(value)) {
    throw new OutboxConfigError(
      "Expected the dashboard token to be 16 to 1024 characters without white space (e.g. openssl rand -hex 32).",
    );
  }
  return value;
}

export function resolveDashboardOptions(options: DashboardOptions): ResolvedDashboardOptions {
  rejectUnknownKeys("dashboard()", options, KNOWN);
  if (typeof options.pool?.query !== "function") throw new OutboxConfigError("Expected `pool` to be a pg.Pool.");
  return {
    pool: options.pool,
    schema: schemaOption("schema", options.schema),
    logger: options.logger,
    allowActions: booleanOption("allowActions", options.allowActions, false),
    token: tokenOption(options.token),
    sampleIntervalMs: durationOption("sampleIntervalMs", options.sampleIntervalMs, 5_000, 100),
    samples: integerOption("samples", options.samples, 180, 2, 100_000),
  };
}
