// What start() checks before anything runs, as the relay's start does: the connection forms (a URL, a pg config, or
// the app's pg.Pool), the secrets kept out of every text, and the database with the start-error rule: OutboxConfigError
// when a person must change something, OutboxStartError when waiting may fix it.
import type pg from "pg";
import { resolveDatabase } from "../config/database.js";
import { secretScrubber } from "../config/redact.js";
import { clockOption, durationOption, expectUrl } from "../config/validate.js";
import { OutboxConfigError, OutboxStartError } from "../errors.js";
import type { Clock } from "../runtime/clock.js";
import type { Logger } from "../runtime/logger.js";
import { type DatabaseSource, describePgError } from "../runtime/pg.js";
import { UNDEFINED_TABLE } from "../sql/check-table.js";
import { checkInboxTableSql } from "../sql/inbox/check-table.js";
import type { InboxNames } from "../sql/names.js";
import type { InboxTransport } from "../transport/transport.js";

/**
 * Where the inbox connects: the consumer's database (holding the inbox table) and RabbitMQ. The database as the
 * relay takes it: `databaseUrl` or `database` (exactly one).
 */
export interface InboxConnection {
  /** PostgreSQL URL of the database your Prisma client uses (the inbox table lives there). */
  databaseUrl?: string | undefined;
  /**
   * A pg connection config (TLS, a password function, a socket path...), or your app's `pg.Pool`: borrowed, never
   * ended by the inbox (end it yourself after `stop()`).
   */
  database?: pg.PoolConfig | pg.Pool | undefined;
  /** RabbitMQ URL (amqp:// or amqps://). Required unless `transport` is given. */
  amqpUrl?: string | undefined;
  /**
   * Another transport to receive from instead of RabbitMQ: the test kit's `MemoryBroker` (`prisma-outbox/testing`),
   * as the relay's `transport` option takes its publishing side.
   */
  transport?: InboxTransport | undefined;
  /**
   * The time the inbox's statements compare with (a retry's backoff, a lease, the dedupe window): the test kit's
   * `TestClock` (`prisma-outbox/testing`), which a test moves forward instead of waiting; the inbox installs it in its
   * database at start and claims what became due when it moves.
   * @defaultValue PostgreSQL's now()
   */
  clock?: Clock | undefined;
  /** Replaces the definition's logger for this run (the CLI passes its own). */
  logger?: Logger;
  /**
   * Replaces the definition's `doctorIntervalMs` for this run: the CLI's `--doctor-interval-ms`, since the definition
   * lives in the user's module and an operator tunes the checks per deployment, not per build.
   */
  doctorIntervalMs?: number | undefined;
}

export function checkConnection(connection: InboxConnection): {
  database: ReturnType<typeof resolveDatabase>;
  broker: { amqpUrl: string } | { transport: InboxTransport };
  clock: Clock;
  /** This run's `doctorIntervalMs`, when start() was given one. */
  doctorIntervalMs: number | undefined;
} {
  if (typeof connection !== "object" || connection === null) {
    throw new OutboxConfigError("Expected start() to get { databaseUrl | database, amqpUrl }.");
  }
  const database = resolveDatabase(connection.databaseUrl, connection.database);
  const clock = clockOption("clock", connection.clock);
  const doctorIntervalMs =
    connection.doctorIntervalMs === undefined
      ? undefined
      : durationOption("doctorIntervalMs", connection.doctorIntervalMs, 60_000, 0);
  const { amqpUrl, transport } = connection;
  if (transport !== undefined) {
    if (amqpUrl !== undefined) throw new OutboxConfigError("Expected `amqpUrl` or `transport`, not both.");
    if (typeof transport?.consumer !== "function") {
      throw new OutboxConfigError("Expected `transport` to have a consumer(options) method (an InboxTransport).");
    }
    return { database, broker: { transport }, clock, doctorIntervalMs };
  }
  if (amqpUrl === undefined) {
    throw new OutboxConfigError("Expected `amqpUrl` (RabbitMQ URL) or `transport`; neither was given.");
  }
  expectUrl("amqpUrl", amqpUrl, ["amqp:", "amqps:"]);
  return { database, broker: { amqpUrl }, clock, doctorIntervalMs };
}

/** The secrets of the connections given (URLs, a config's password) out of a text; the app's pool's are its own. */
export function connectionScrubber(source: DatabaseSource, amqpUrl: string | undefined): (text: string) => string {
  const config = source.kind === "config" ? source.config : undefined;
  const urls = [config?.connectionString, amqpUrl].filter((u): u is string => typeof u === "string");
  const byUrl = secretScrubber(urls);
  // Shorter passwords would blank out ordinary words; pg does not echo a config's password in its errors anyway.
  const password = typeof config?.password === "string" && config.password.length >= 4 ? config.password : undefined;
  return password === undefined ? byUrl : (text) => byUrl(text).replaceAll(password, "***");
}

/**
 * Fails fast, saying what to do: OutboxConfigError when a person must change something (the inbox table missing, a
 * wrong password, role or database), OutboxStartError when waiting may fix it (the database down or not answering),
 * as the relay's start() does.
 */
export async function checkTable(pool: pg.Pool, names: InboxNames, shown: string): Promise<void> {
  try {
    await pool.query(checkInboxTableSql(names));
  } catch (thrown) {
    const { message, code, permanent } = describePgError(thrown);
    if (code === UNDEFINED_TABLE) {
      throw new OutboxConfigError(
        `The table inbox_message does not exist in schema "${names.schema}": add prisma/inbox.prisma of the package to your schema and migrate (see docs/inbox.md in the package), or set \`schema\` to the schema that holds it.`,
      );
    }
    if (permanent) {
      throw new OutboxConfigError(
        `The database (${shown}) refused the inbox: ${message}; check the user, password and database name of \`databaseUrl\` (or \`database\`).`,
        { cause: thrown },
      );
    }
    throw new OutboxStartError(`The inbox could not connect to the database (${shown}): ${message}.`, {
      cause: thrown,
      code,
    });
  }
}
