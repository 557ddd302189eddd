// The relay's PostgreSQL sessions, from whichever source it was given (config/database-options.ts):
// - a URL or a pg config: the relay's own pool, with its application name and timeouts, ended on stop();
// - the app's pg.Pool: borrowed, never ended, and left as the app configured it.
// And the LISTEN session: a client of its own from a URL or a config; from the app's pool, one client checked out
// for as long as it listens, and destroyed (not returned) when done, so that no pooled session keeps the LISTEN.
import pg from "pg";
import type { DatabaseSource } from "../config/database.js";

/** pg emits 'error' on a client whose backend died; without a listener that would crash the process. */
const ignore = () => {};

export interface RelayPool {
  pool: pg.Pool;
  /** Ends the relay's own pool; for the app's pool, only removes what the relay attached to it. */
  close(): Promise<void>;
}

/**
 * The pool the batches run on. `settings` apply to a pool the relay makes (its config wins over the user's for
 * these keys: they are what keeps a hung relay from holding row locks); the app's pool is used as it is.
 */
export function openPool(source: DatabaseSource, settings: pg.PoolConfig): RelayPool {
  if (source.kind === "pool") {
    const { pool } = source;
    // pg-pool listens for a client's errors only while it is idle: a backend dying while the relay holds the client
    // would be an uncaught 'error'. The failure also rejects the query in flight, which is where the relay sees it.
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
  // also rejects the query in flight or the next one, which is where the relay handles it.
  pool.on("error", ignore);
  pool.on("connect", (client) => client.on("error", ignore));
  return { pool, close: () => pool.end() };
}

export interface ListenSession {
  client: pg.ClientBase;
  /** Ends the session (a pooled one is destroyed, so that its LISTEN dies with it). Never rejects. */
  close(): Promise<void>;
}

/**
 * A session for LISTEN. `onError` receives the session's errors (and its end) from the moment it exists, so that a
 * connection lost during set-up is reported like one lost later. `signal` abandons a connection attempt in progress
 * (a pooled one is released as soon as the pool hands it over).
 */
export async function openListenSession(
  source: DatabaseSource,
  settings: pg.ClientConfig,
  onError: (error: Error) => void,
  signal: AbortSignal,
): Promise<ListenSession> {
  if (source.kind === "pool") {
    const client = await source.pool.connect();
    const onEnd = () => onError(new Error("LISTEN connection ended"));
    let released = false;
    const session: ListenSession = {
      client,
      async close() {
        if (released) return;
        released = true;
        client.off("error", onError);
        client.off("end", onEnd);
        client.release(true); // destroyed: a pooled session must not keep LISTEN for the app's next query
      },
    };
    client.on("error", onError);
    client.on("end", onEnd);
    if (signal.aborted) await session.close();
    return session;
  }
  const client = new pg.Client({ ...source.config, ...settings });
  client.on("error", onError);
  // The abort listener goes with the session: the signal outlives every reconnect.
  const close = () => {
    signal.removeEventListener("abort", close);
    return client.end().catch(() => {});
  };
  signal.addEventListener("abort", close, { once: true });
  try {
    await client.connect();
  } catch (error) {
    await close();
    throw error; // the reason (refused, TLS, authentication), not the 'end' that follows it
  }
  client.on("end", () => onError(new Error("LISTEN connection ended")));
  return { client, close };
}
