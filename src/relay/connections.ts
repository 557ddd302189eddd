// The relay's LISTEN session, from whichever source it was given (runtime/pg.ts): a client of its own from a URL or
// a config; from the app's pool, one client checked out for as long as it listens, and destroyed (not returned) when
// done, so that no pooled session keeps the LISTEN.
import pg from "pg";
import type { DatabaseSource } from "../runtime/pg.js";

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
