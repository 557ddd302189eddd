// The time the relay and the inbox compare with when they decide what is due: a retry's backoff, a delayed
// message's availableAt, an inbox lease, the dedupe window. In production it is PostgreSQL's now() (databaseClock),
// never the process's clock: several processes on several machines agree on what is due because they ask one
// database. The test kit's TestClock (src/testing/clock.ts) gives its own SQL instead, PostgreSQL's now() plus an
// offset it moves forward, so that a test of "fails twice, succeeds on the third try" takes milliseconds, not minutes.
// The SQL is built into every statement once (src/sql/names.ts), not passed per query.
import type pg from "pg";
import { OutboxConfigError, OutboxStartError } from "../errors.js";
import { describePgError } from "./pg.js";

/** What the relay and the inbox take as `clock`: the SQL for "now", and a signal that it moved. */
export interface Clock {
  /**
   * SQL for "now" in every statement of the relay and the inbox that compares with or computes from now(): an
   * expression of type timestamptz, written into the statements as it is (so only ever code, never input).
   */
  readonly sql: string;
  /** Called after the clock moved (the relay and the inbox wake to claim what became due). Returns unsubscribe. */
  onAdvance(listener: () => void): () => void;
  /**
   * Makes `sql` work in the database of `pool` (the test clock creates its function there); the relay and the inbox
   * call it at start, before any statement uses `sql`. Idempotent.
   */
  install?(pool: pg.Pool): Promise<void>;
}

/** PostgreSQL's own now() (the transaction's start): the clock of every relay and inbox not given another. */
export const databaseClock: Clock = Object.freeze({
  sql: "now()",
  onAdvance: () => () => {},
});

/**
 * Makes the clock's SQL work in the database of a relay or an inbox that starts (`install`, when the clock has one),
 * with the start-error rule of docs/architecture.md: OutboxConfigError when a person must act (no right to create
 * the clock's schema, say), OutboxStartError when waiting may fix it.
 */
export async function installClock(clock: Clock, pool: pg.Pool, part: "relay" | "inbox"): Promise<void> {
  if (clock.install === undefined) return;
  try {
    await clock.install(pool);
  } catch (thrown) {
    const { message, code, permanent } = describePgError(thrown);
    const text = `The ${part}'s clock could not be installed in its database: ${message}.`;
    throw permanent
      ? new OutboxConfigError(text, { cause: thrown })
      : new OutboxStartError(text, { cause: thrown, code });
  }
}
