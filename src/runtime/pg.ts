// PostgreSQL, as every part meets it: where sessions come from (a config the part pools itself, or the app's pool),
// opening that pool, and what an error from the server means.
// - a URL or a pg config: the part's own pool, with its application name and timeouts, ended on stop();
// - the app's pg.Pool: borrowed, never ended, and left as the app configured it.
import pg from "pg";

/** Where a part's sessions come from. */
export type DatabaseSource =
  /** The part makes its own pool (and LISTEN connection) from this config, and ends them on stop(). */
  | { kind: "config"; config: pg.PoolConfig }
  /**
   * The app's pool: the part borrows clients for its batches and one client for LISTEN (held while it listens), and
   * never ends the pool.
   */
  | { kind: "pool"; pool: pg.Pool };

/** pg emits 'error' on a client whose backend died; without a listener that would crash the process. */
const ignore = () => {};

export interface OwnedPool {
  pool: pg.Pool;
  /** Ends the part's own pool; for the app's pool, only removes what the part attached to it. */
  close(): Promise<void>;
}

/**
 * The pool the batches run on. `settings` apply to a pool the part makes (its config wins over the user's for
 * these keys: they are what keeps a hung part from holding row locks); the app's pool is used as it is.
 */
export function openPool(source: DatabaseSource, settings: pg.PoolConfig): OwnedPool {
  if (source.kind === "pool") {
    const { pool } = source;
    // pg-pool listens for a client's errors only while it is idle: a backend dying while the part holds the client
    // would be an uncaught 'error'. The failure also rejects the query in flight, which is where the part sees it.
    const guarded = new Set<pg.PoolClient>();
    const onAcquire = (client: pg.PoolClient) => {
      if (guarded.has(client)) return;
      guarded.add(client);
      client.on("error", ignore);
    };
    pool.on("acquire", onAcquire);
    return {
      pool,
      async close() {
        pool.off("acquire", onAcquire);
        for (const client of guarded) client.off("error", ignore);
        guarded.clear();
      },
    };
  }
  const pool = new pg.Pool({ ...source.config, ...settings, max: source.config.max ?? settings.max });
  // A backend that dies (pg_terminate_backend, a restart, a network cut) makes its client emit 'error'; pg-pool
  // listens only while the client is idle, and an 'error' without a listener would crash the process. The failure
  // also rejects the query in flight or the next one, which is where the part handles it.
  pool.on("error", ignore);
  pool.on("connect", (client) => client.on("error", ignore));
  return { pool, close: () => pool.end() };
}

// What a database error means for every part (relay, inbox, the operator commands): its code for the logs, and
// whether waiting can fix it.
//
// PostgreSQL errors carry a SQLSTATE (`code`, e.g. 28P01); socket errors carry a Node code (ECONNREFUSED). Both go
// into every log line, so that "the relay cannot publish" comes with the reason an operator can act on.

/** SQLSTATE classes and codes that retrying does not fix: someone has to change a password, a grant, a table. */
const NEEDS_A_PERSON: Array<string | RegExp> = [
  /^28/, // invalid authorization: wrong password, no such role, pg_hba.conf refuses
  "3D000", // the database does not exist
  /^42/, // syntax, permission (42501), undefined table (42P01) or column
  "0A000", // feature not supported (e.g. a pooler refusing something)
  "3F000", // the schema does not exist
];

/**
 * Poolers refuse a login with their own codes: PgBouncer answers a wrong password or an unknown user with 08P01
 * (protocol violation), which would otherwise look like a network failure worth retrying.
 */
const REFUSED_LOGIN = /password authentication failed|no such user|SASL authentication failed/i;

interface DescribedError {
  /** The error's message with its code, e.g. `password authentication failed for user "x" (28P01)`. */
  message: string;
  code: string | undefined;
  /** True when retrying cannot help: log it as an error, fail start() on it. */
  permanent: boolean;
}

export function describePgError(error: unknown): DescribedError {
  const e = error as { message?: unknown; code?: unknown } | undefined;
  const code = typeof e?.code === "string" ? e.code : undefined;
  const text = typeof e?.message === "string" && e.message !== "" ? e.message : String(error);
  const permanent =
    (code !== undefined && NEEDS_A_PERSON.some((p) => (typeof p === "string" ? p === code : p.test(code)))) ||
    REFUSED_LOGIN.test(text);
  return { message: code && !text.includes(code) ? `${text} (${code})` : text, code, permanent };
}

/**
 * What a failed INSERT of received deliveries says about the deliveries (the inbox receiver decides on it):
 * - `transient`: the connection, the server's state or a conflict with another transaction (no SQLSTATE: the socket;
 *   08 connection, 40001/40P01 serialization and deadlock, 53 resources, 55 object state, 57 shutdown and
 *   recovery, 25 read-only during a failover) and what a person must fix on the database side (28, 3D000, 42, 0A000):
 *   not the deliveries' fault, retried as they are, never blamed on one of them;
 * - `data`: the data itself (22 data exception: a value PostgreSQL cannot store; 54 program limit: nesting, sizes):
 *   retrying the same rows fails the same way, so the batch is split at once to find the culprit;
 * - `other` (57014 statement timeout, 23 constraints, triggers, internal errors): retried, and split once it comes
 *   back the same way a few times in a row.
 */
type InsertFailureKind = "transient" | "data" | "other";

const TRANSIENT: Array<string | RegExp> = [/^08/, "40001", "40P01", /^53/, /^55/, /^25/, /^57(?!014)/];

export function insertFailureKind(error: unknown): InsertFailureKind {
  const e = error as { code?: unknown; severity?: unknown } | undefined;
  const code = e?.code;
  // Only the server's errors carry a severity; socket errors carry a Node code (ECONNRESET, EPIPE), and pg's own
  // "Connection terminated" none.
  if (typeof e?.severity !== "string" || typeof code !== "string") return "transient";
  if (code.startsWith("22") || code.startsWith("54")) return "data";
  if (describePgError(error).permanent) return "transient";
  return TRANSIENT.some((p) => (typeof p === "string" ? p === code : p.test(code))) ? "transient" : "other";
}
