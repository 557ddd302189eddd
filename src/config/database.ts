// How the relay and the inbox reach PostgreSQL: a URL, a pg connection config (TLS, a password function, a socket
// path...), or the app's own pg.Pool. Checked once, when the part is created or started; what is shown of it never
// holds a password.
import type pg from "pg";
import { OutboxConfigError } from "../errors.js";
import type { DatabaseSource } from "../runtime/pg.js";
import { redactConnectionConfig, redactUrl } from "./redact.js";
import { expectUrl, integerOption } from "./validate.js";

export interface ResolvedDatabase {
  source: DatabaseSource;
  /** The source as it may be shown in logs and `relay.options`: no password, no key. */
  shown: string;
}

/** A pg.Pool, from this copy of pg or another one (duck-typed: the app may load its own pg). */
function isPool(value: object): value is pg.Pool {
  const v = value as Partial<pg.Pool>;
  return typeof v.connect === "function" && typeof v.query === "function" && typeof v.totalCount === "number";
}

/**
 * `databaseUrl` or `database` (exactly one): a postgres:// URL, or a pg.PoolConfig, or a pg.Pool.
 */
export function resolveDatabase(databaseUrl: unknown, database: unknown): ResolvedDatabase {
  if (databaseUrl !== undefined && database !== undefined) {
    throw new OutboxConfigError("Expected `databaseUrl` or `database`, not both.");
  }
  if (databaseUrl !== undefined) {
    expectUrl("databaseUrl", databaseUrl, ["postgres:", "postgresql:"]);
    return {
      source: { kind: "config", config: { connectionString: databaseUrl as string } },
      shown: redactUrl(databaseUrl as string),
    };
  }
  if (database === undefined) {
    throw new OutboxConfigError(
      "Expected `databaseUrl` (a postgres:// URL) or `database` (a pg connection config or a pg.Pool); neither was given.",
    );
  }
  if (typeof database !== "object" || database === null || Array.isArray(database)) {
    throw new OutboxConfigError(
      `Expected \`database\` to be a pg connection config object or a pg.Pool, got ${database === null ? "null" : typeof database}.`,
    );
  }
  if (isPool(database)) {
    if ((database as { ending?: boolean }).ending || (database as { ended?: boolean }).ended) {
      throw new OutboxConfigError("Expected `database` to be a pg.Pool that is not ended.");
    }
    return { source: { kind: "pool", pool: database }, shown: "pg.Pool (the app's)" };
  }
  if (typeof (database as { connect?: unknown }).connect === "function") {
    throw new OutboxConfigError(
      "Expected `database` to be a pg.Pool or a connection config; a single pg.Client cannot serve concurrent batches (and the relay's LISTEN).",
    );
  }
  const config = { ...(database as pg.PoolConfig) };
  if (config.connectionString !== undefined) {
    expectUrl("database.connectionString", config.connectionString, ["postgres:", "postgresql:"]);
  }
  integerOption("database.max", config.max, 1, 1);
  return {
    source: { kind: "config", config },
    shown: JSON.stringify(redactConnectionConfig(config as Record<string, unknown>)),
  };
}
