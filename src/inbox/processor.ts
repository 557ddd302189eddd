// The processor: claims due inbox rows and runs each one's handler in an interactive transaction of the user's Prisma
// client, the same transaction that marks the row processed. A handler's effect therefore commits exactly once per
// (message, handler), although deliveries and claims may repeat.
//
// State machine:
//   running: loop { start claimed rows while slots are free; the claim-ahead buffer low (fewer than half of
//            `concurrency` rows)? claim up to 2 x concurrency rows in flight + buffered (ids handed over by the
//            receiver first, else due rows when the sweeper's timer fired or the last claim came back full) -> start
//            what fits, buffer the rest; nothing to do -> wait for a hand-off, a finished handler or the timer }
//   running --stop()--> stopping: no more claims; buffered rows released (their attempt taken back, due at once);
//            handlers in flight finish, or past the deadline their signals abort (their transactions roll back, the
//            rows come back when their lease runs out) --> stopped
// Leased by the receiver: rows the receiver's INSERT claimed for this processor (reserve() before it, adopt() after its
// COMMIT) join the buffer as claimed rows do, without a claim statement; reserve() counts them in the same 2 x
// `concurrency` room, so a claim and a lease never overfill it.
// Claim-ahead: claiming one row per freed slot puts a claim round trip between every two handler transactions of a
// slot; claiming several rows in one statement while the slots are still busy keeps the slots fed. A buffered row is
// leased from its claim, so it must not wait long: rows buffered longer than MAX_BUFFERED_MS are released rather than
// started with a shortened lease.
// One attempt of a row (the handler, its transaction, the outcome recorded) is attempt.ts.
// Batch handlers: a slot runs a batch (batch-attempt.ts) of up to `batch.size` buffered rows of one batch handler,
// started once the batch is full or its oldest row waited `batch.waitMs`; the room above is then counted in rows,
// `batch.size` (the largest of the inbox's batch handlers) rows per slot. A batch that failed hands its rows back as
// ids, claimed again and run alone.
import type pg from "pg";
import { coerceError, InboxHandlerTimeoutError } from "../errors.js";
import { type ClaimedInboxRow, claimDueInbox, claimInboxByIdsSql } from "../sql/inbox/claim.js";
import { releaseInboxMessagesSql } from "../sql/inbox/release.js";
import type { InboxNames } from "../sql/names.js";
import { InboxAttempts, type PrismaLike } from "./attempt.js";
import { InboxBatchAttempts, planStarts } from "./batch-attempt.js";
import type { InboxEvent } from "./events.js";
import type { ResolvedHandler } from "./handler-options.js";
import type { ResolvedInboxOptions } from "./options.js";
import type { ReceivedRows } from "./received-rows.js";
import type { HandlerRegistry } from "./registry.js";
import { WaitingPass } from "./unhandled.js";

export type { PrismaLike } from "./attempt.js";

/** Ids handed over but not claimed yet are kept up to this many; beyond, the sweeper finds them. */
const MAX_HANDED_IDS = 10_000;

/** A claimed row waits in the claim-ahead buffer at most this long (and at most a third of the lease margin); then it
 * is released, so that a started row always has most of its lease margin left. */
const MAX_BUFFERED_MS = 5_000;

export class Processor implements ReceivedRows {
  readonly #pool: pg.Pool;
  readonly #attempts: InboxAttempts;
  readonly #batches: InboxBatchAttempts;
  readonly #registry: HandlerRegistry;
  /** Rows a slot takes at most: the largest batch size of this inbox's handlers (1 without batch handlers). */
  readonly #perSlot: number;
  /** Slots busy (a slot runs one row's attempt or one batch). */
  #slots = 0;
  /** Ends the wait of a batch that is filling (its oldest row's `waitMs`). */
  #fillTimer: NodeJS.Timeout | undefined;
  readonly #options: ResolvedInboxOptions;
  readonly #claimByIdsSql: string;
  /** The queue's placeholder handler with a grace: keyed rows wait behind its rows of their key (sql/inbox/claim.ts). */
  readonly #waiting: string | undefined;
  /** This inbox's handlers: its due claims take only their rows (several inboxes may share one table). */
  readonly #handlerNames: readonly string[];
  readonly #releaseSql: string;
  readonly #names: InboxNames;
  readonly #handed: string[] = [];
  readonly #inFlight = new Map<string, AbortController>();
  /** Claimed, not started yet (claim-ahead), oldest first. */
  #ready: Array<{ row: ClaimedInboxRow; claimedAt: number }> = [];
  /** Room promised to the receiver for rows it is leasing in an INSERT still in flight (reserve()/adopt()). */
  #reserved = 0;
  #sweepDue = true; // drain what is there at start
  #stopping = false;
  #wake: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #loop: Promise<void> | undefined;
  /** For health(): when the last claim reached the database, and the error of the last one that did not. */
  lastClaimAt: number | undefined;
  claimError: string | undefined;

  constructor(
    pool: pg.Pool,
    prisma: PrismaLike,
    registry: HandlerRegistry,
    options: ResolvedInboxOptions,
    names: InboxNames,
    emit: (event: InboxEvent) => void,
  ) {
    this.#pool = pool;
    this.#options = options;
    this.#attempts = new InboxAttempts(pool, prisma, registry, options, names, emit);
    this.#batches = new InboxBatchAttempts(pool, prisma, options, names, emit);
    this.#registry = registry;
    this.#perSlot = Math.max(1, ...registry.names.map((n) => registry.byName(n)?.batch?.size ?? 1));
    this.#names = names;
    this.#waiting = WaitingPass.receiving(options)?.handler;
    this.#claimByIdsSql = claimInboxByIdsSql(this.#names, options.keyAfterDead, this.#waiting);
    this.#handlerNames = registry.names;
    this.#releaseSql = releaseInboxMessagesSql(this.#names);
  }

  /** The lease of a claim: the handler's time, plus room for the transaction to start and commit. */
  get leaseMs(): number {
    return this.#options.handlerTimeoutMs + this.#options.leaseMarginMs;
  }

  /** Rows running, buffered and being leased, at most: two slots' worth per slot. */
  get #capacity(): number {
    return 2 * this.#options.concurrency * this.#perSlot;
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#sweepDue = true;
      this.#wake?.();
    }, this.#options.sweepIntervalMs);
    this.#loop = this.#run();
  }

  /**
   * Room for rows the receiver is about to store: it leases up to this many of them to this processor in its INSERT
   * (claimed there: no claim round trip between a delivery's COMMIT and its handler), then hands them over with
   * adopt(). Counted with the rows running and buffered, so a leased row waits for a slot no longer than a claimed
   * one. None while stopping.
   */
  reserve(wanted: number): number {
    if (this.#stopping || wanted <= 0) return 0;
    const room = this.#capacity - this.#inFlight.size - this.#ready.length - this.#reserved;
    const granted = Math.max(0, Math.min(wanted, room));
    this.#reserved += granted;
    return granted;
  }

  /**
   * The rows the receiver's INSERT leased (fewer than reserved when some were duplicates, none when it gave up):
   * buffered as if claimed now. After stop() began they are released instead (stop() released the buffer already).
   */
  adopt(rows: ClaimedInboxRow[], reserved: number): void {
    this.#reserved -= reserved;
    if (rows.length === 0) return;
    if (this.#stopping) {
      void this.#release(rows);
      return;
    }
    const claimedAt = performance.now();
    for (const row of rows) this.#ready.push({ row, claimedAt });
    this.#startReady();
    this.#wake?.();
  }

  /** Rows the receiver just committed: claim them at once. */
  handoff(ids: readonly string[]): void {
    if (this.#stopping) return;
    const room = MAX_HANDED_IDS - this.#handed.length;
    for (const id of ids.slice(0, Math.max(0, room))) this.#handed.push(id);
    this.#wake?.();
  }

  /**
   * Claims due rows now, as the sweeper's timer would: the clock moved (a test clock's advance), so retries whose
   * backoff ended and rows whose lease ran out are due, and nothing else announces them. Ends the loop's wait.
   */
  wake(): void {
    if (this.#stopping) return;
    this.#sweepDue = true;
    this.#wake?.();
  }

  /** Stops claiming; waits for handlers in flight up to the deadline, then aborts them and waits for the rollbacks. */
  async stop(deadlineMs: number): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#timer);
    clearTimeout(this.#fillTimer);
    this.#wake?.();
    await this.#loop;
    await this.#release(this.#ready.splice(0).map((r) => r.row));
    const deadline = Date.now() + deadlineMs;
    while (this.#inFlight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const controller of this.#inFlight.values()) {
      controller.abort(new InboxHandlerTimeoutError("the inbox is stopping past its deadline"));
    }
    const grace = Date.now() + 5_000;
    while (this.#inFlight.size > 0 && Date.now() < grace) await new Promise((r) => setTimeout(r, 10));
  }

  async #run(): Promise<void> {
    const { concurrency } = this.#options;
    while (!this.#stopping) {
      this.#startReady();
      let claimed: ClaimedInboxRow[] = [];
      // Room left once the rows running, buffered, and being leased by the receiver (reserve()) are counted.
      const room = this.#capacity - this.#inFlight.size - this.#ready.length - this.#reserved;
      const low = Math.ceil(concurrency / 2) * this.#perSlot;
      if (this.#ready.length < low && room > 0) {
        try {
          claimed = await this.#claim(room);
          this.lastClaimAt = Date.now();
          this.claimError = undefined;
        } catch (thrown) {
          const error = coerceError(thrown);
          this.claimError = error.message;
          this.#options.logger.warn("claiming inbox rows failed; retrying", {
            error: error.message,
            code: (thrown as { code?: string }).code,
          });
          await this.#sleep(Math.min(this.#options.sweepIntervalMs, 1_000));
          continue;
        }
        const claimedAt = performance.now();
        for (const row of claimed) this.#ready.push({ row, claimedAt });
        if (this.#stopping) break; // stop() releases them
        this.#startReady();
      }
      const more = claimed.length > 0 || this.#handed.length > 0 || this.#sweepDue;
      // No room: adopt() or a finished handler wakes the loop.
      const full = this.#ready.length >= low || room <= 0;
      if (!more || full) await this.#sleep();
    }
  }

  /**
   * Starts buffered rows while slots are free, oldest first: a row alone, or a batch handler's first attempts as one
   * batch (a filling batch waits, and the rows behind it go on); releases rows that waited too long for a slot.
   */
  #startReady(): void {
    const stale: ClaimedInboxRow[] = [];
    const now = performance.now();
    // Oldest first: the head is the one that waited longest.
    const maxBuffered = Math.min(MAX_BUFFERED_MS, this.#options.leaseMarginMs / 3);
    while (this.#ready.length > 0 && now - this.#ready[0]!.claimedAt > maxBuffered)
      stale.push(this.#ready.shift()!.row);
    if (stale.length > 0) void this.#release(stale);
    const free = this.#options.concurrency - this.#slots;
    const plan = planStarts(this.#ready, this.#registry, free, now, this.#stopping);
    this.#ready = plan.rest;
    for (const start of plan.starts) {
      if (start.batch) this.#startBatch(start.batch, start.rows);
      else this.#startHandling(start.rows[0]!);
    }
    const { fillAt } = plan;
    if (fillAt !== Number.POSITIVE_INFINITY && this.#fillTimer === undefined) {
      this.#fillTimer = setTimeout(
        () => {
          this.#fillTimer = undefined;
          if (!this.#stopping) this.#startReady();
        },
        Math.max(0, fillAt - now),
      );
    }
  }

  /** Gives claimed, never started rows back (attempt taken back, due at once); on failure their lease runs out. */
  async #release(rows: ClaimedInboxRow[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      await this.#pool.query(this.#releaseSql, [rows.map((r) => r.id), rows.map((r) => r.attempts)]);
    } catch (thrown) {
      this.#options.logger.warn("releasing claimed inbox rows failed; they are due again when their lease runs out", {
        rows: rows.length,
        error: coerceError(thrown).message,
      });
    }
  }

  async #claim(limit: number): Promise<ClaimedInboxRow[]> {
    if (this.#handed.length > 0) {
      const ids = this.#handed.splice(0, limit);
      const { rows } = await this.#pool.query<ClaimedInboxRow>(this.#claimByIdsSql, [this.leaseMs, ids]);
      return rows;
    }
    if (!this.#sweepDue) return [];
    // Cleared before the claim, not after: a keyed row ending meanwhile asks again (its successor is claimable only
    // now), and overwriting that ask would leave the successor to the sweeper's tick.
    this.#sweepDue = false;
    const rows = await this.#claimDue(limit).catch((thrown: unknown) => {
      this.#sweepDue = true;
      throw thrown;
    });
    // A full claim means there may be more: keep claiming as slots free up, without waiting for the timer.
    if (rows.length === limit) this.#sweepDue = true;
    return rows;
  }

  /**
   * The due claim: BEGIN, the claim and COMMIT in one round trip (see claimDueInbox). A statement that fails leaves
   * its transaction open and aborted on the connection: pool.query releases a client with the error, and the pool then
   * drops it (it never hands out a connection inside a transaction).
   */
  async #claimDue(limit: number): Promise<ClaimedInboxRow[]> {
    const results = (await this.#pool.query(
      claimDueInbox(this.#names, this.#options.keyAfterDead, this.leaseMs, limit, this.#handlerNames, this.#waiting),
    )) as unknown as pg.QueryResult<ClaimedInboxRow>[];
    return results[2]!.rows;
  }

  /** Waits for a hand-off, a finished handler, the sweeper's timer, or stop (or `ms`, when given). */
  #sleep(ms?: number): Promise<void> {
    // stop() may have called #wake while a claim was in flight, before this wait began: never wait after stop().
    if (this.#stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        this.#wake = undefined;
        done();
      };
    });
  }

  #startHandling(row: ClaimedInboxRow): void {
    const controller = new AbortController();
    this.#occupy([row], controller, this.#attempts.run(row, controller));
  }

  #startBatch(handler: ResolvedHandler, rows: ClaimedInboxRow[]): void {
    const controller = new AbortController();
    const run = this.#batches.run(handler, rows, controller).then((split) => {
      // A failed batch's rows, due again: claimed by id at once, and run alone (they failed before).
      if (!this.#stopping) this.#handed.push(...split);
    });
    this.#occupy(rows, controller, run);
  }

  /** Holds a slot (and its rows in flight) until `run` settles. */
  #occupy(rows: ClaimedInboxRow[], controller: AbortController, run: Promise<unknown>): void {
    this.#slots++;
    for (const row of rows) this.#inFlight.set(row.id, controller);
    void run
      .catch((thrown) => {
        // An attempt reports its own failures; anything reaching here is a bug or a database outage while recording.
        this.#options.logger.error("inbox attempt failed unrecorded", {
          id: rows[0]?.id,
          rows: rows.length,
          error: coerceError(thrown).message,
        });
      })
      .finally(() => {
        this.#slots--;
        for (const row of rows) this.#inFlight.delete(row.id);
        // The key's next row may be claimable now (a claim skips it while this one is pending): look at once, not at
        // the sweeper's next tick (its id was handed over, and dropped, while this one was in flight).
        if (rows.some((row) => row.ordering_key !== null)) this.#sweepDue = true;
        this.#wake?.();
      });
  }
}
