// The test kit's clock: time that a test moves forward instead of waiting for it. Retries, backoff, delayed messages,
// leases and the dedupe window are decided in SQL by comparing with "now", so the clock lives in the database too:
// its `sql` is PostgreSQL's now() plus this clock's offset (sql/testing/clock.ts), and the relay and the inbox, given
// it as `clock`, build every such statement with it (sql/names.ts).
//
// States: the offset starts at 0 (the clock reads the database's time) and only grows. install(db) records a
// database and writes the current offset there; advance(ms) adds to the offset, writes it to every database recorded
// (committed before it goes on), then calls the onAdvance listeners: the relays and inboxes on this clock wake and
// claim what became due. Database writes run one at a time, in call order, so the last offset written is the
// clock's.
//
// Why it never goes back (no `start` in the past, no negative advance): the write side stamps new outbox rows with
// the database's own time (sql/outbox/insert.ts); a clock behind it would find fresh rows not yet due.
import { randomUUID } from "node:crypto";
import type pg from "pg";
import { expected } from "../config/validate.js";
import type { Clock } from "../runtime/clock.js";
import { safeEmit } from "../runtime/emitter.js";
import { installTestClockSql, setTestClockOffsetSql, testClockNowSql } from "../sql/testing/clock.js";

/** Where a clock is installed: a pool, or a client (kept until it ends). */
export type ClockDatabase = pg.Pool | pg.Client | pg.PoolClient;

export class TestClock implements Clock {
  /** This clock's row in the databases it is installed in. */
  readonly id = `clock_${randomUUID().replaceAll("-", "")}`;
  /** `"prisma_outbox_testing"."now"('<id>')`: PostgreSQL's now() plus this clock's offset. */
  readonly sql = testClockNowSql(this.id);
  #offsetMs = 0;
  readonly #databases = new Set<ClockDatabase>();
  readonly #listeners = new Set<() => void>();
  /** The database writes, one after the other (see the top of this module). */
  #writes: Promise<unknown> = Promise.resolve();

  /** How far ahead of real time the clock is, in milliseconds. */
  get offsetMs(): number {
    return this.#offsetMs;
  }

  /** The clock's time: real time plus the offset (what `sql` gives in the database, on the database's clock). */
  now(): Date {
    return new Date(Date.now() + this.#offsetMs);
  }

  /**
   * Creates the clock's schema, table and function in the database of `db` where missing, and writes this clock's
   * offset there; later advances update it. Idempotent, and safe when several test files install at once. The relay
   * and the inbox call it at start with their own pools; a harness calls it with its own. A pool is forgotten once it
   * ends, a client once it ends; `uninstall` forgets either sooner.
   */
  install(db: ClockDatabase): Promise<void> {
    if (!this.#databases.has(db)) {
      this.#databases.add(db);
      if (!isPool(db)) db.once("end", () => this.#databases.delete(db));
    }
    return this.#write(() => db.query(installTestClockSql(this.id, this.#offsetMs)));
  }

  /** Stops updating the database of `db` (its row stays; nothing else reads it). */
  uninstall(db: ClockDatabase): void {
    this.#databases.delete(db);
  }

  /**
   * Moves the clock forward by `ms` (finite, >= 0): in every database it is installed in, then wakes the relays and
   * inboxes on it, which claim what became due. Resolves once every database has the new time; it does not wait for
   * what the wake-ups do (a harness's `settled()` does). Moving past a handler's lease while it runs makes the lease
   * run out, as waiting that long would.
   */
  async advance(ms: number): Promise<void> {
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
      throw expected("`ms` of clock.advance()", "a finite number >= 0 (milliseconds)", ms);
    }
    this.#offsetMs += ms;
    await this.#write(() => {
      const live = [...this.#databases].filter((db) => !isPool(db) || !(db.ending || db.ended));
      for (const db of this.#databases) if (!live.includes(db)) this.#databases.delete(db);
      return Promise.all(live.map((db) => db.query(setTestClockOffsetSql(), [this.id, this.#offsetMs])));
    });
    safeEmit(this.#listeners, undefined);
  }

  /** Called after every advance, once the databases have the new time. Returns unsubscribe. */
  onAdvance(listener: () => void): () => void {
    const entry = () => listener();
    this.#listeners.add(entry);
    return () => this.#listeners.delete(entry);
  }

  /** Runs `write` after the writes before it (a failed one does not stop the next). */
  #write(write: () => Promise<unknown>): Promise<void> {
    const next = this.#writes.catch(() => {}).then(write);
    this.#writes = next;
    return next.then(() => {});
  }
}

function isPool(db: ClockDatabase): db is pg.Pool {
  return "totalCount" in db && "ended" in db;
}
