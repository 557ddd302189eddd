// The clock without a database: names built with a clock put its SQL into every relay and inbox statement that
// compares with or computes from "now" (and the default names keep PostgreSQL's now(), text unchanged); the write side
// keeps the database's time; the options refuse what is not a clock; a TestClock refuses to move by a bad amount.
import { describe, expect, it } from "vitest";
import { checkConnection } from "../../src/inbox/startup.js";
import { createRelay, OutboxConfigError } from "../../src/index.js";
import { type Clock, databaseClock } from "../../src/runtime/clock.js";
import { inboxBacklogGaugesSql } from "../../src/sql/inbox/backlog.js";
import { claimDueInbox, claimDueInboxSql, claimInboxByIdsSql } from "../../src/sql/inbox/claim.js";
import { completeInboxMessageSql } from "../../src/sql/inbox/complete.js";
import { retryInboxDeadSql } from "../../src/sql/inbox/dead-rows.js";
import { failInboxMessageSql } from "../../src/sql/inbox/fail.js";
import { insertInboxMessagesSql } from "../../src/sql/inbox/insert.js";
import { purgeInboxMessagesSql } from "../../src/sql/inbox/purge.js";
import { releaseInboxMessagesSql } from "../../src/sql/inbox/release.js";
import { inboxNames, outboxNames } from "../../src/sql/names.js";
import { outboxBacklogGaugesSql } from "../../src/sql/outbox/backlog.js";
import { claimByIds, claimKeyed, claimKeyHeads, claimNext, claimSweep } from "../../src/sql/outbox/claim.js";
import { deadLetterMessagesSql } from "../../src/sql/outbox/dead-letter.js";
import { insertMessagesSql } from "../../src/sql/outbox/insert.js";
import { requeueMessagesSql } from "../../src/sql/outbox/requeue.js";
import { testClockNowSql } from "../../src/sql/testing/clock.js";
import { TestClock } from "../../src/testing/clock.js";

const clock = new TestClock();
const now = /\bnow\(\)/;

describe("names built with a clock", () => {
  const outbox = outboxNames("shop", clock);
  const inbox = inboxNames("shop", clock);
  const filter = { where: "true", params: [] };

  const relayStatements: Record<string, string> = {
    backlog: outboxBacklogGaugesSql(outbox),
    claimByIds: claimByIds(outbox, ["1"]),
    claimNext: claimNext(outbox, 10),
    claimSweep: claimSweep(outbox, 10, 5_000),
    claimKeyed: claimKeyed(outbox, 10, 5),
    claimKeyedSweep: claimKeyed(outbox, 10, 5, "stop", 5_000),
    claimKeyHeads: claimKeyHeads(outbox, ["k"]),
    requeue: requeueMessagesSql(outbox),
    deadLetter: deadLetterMessagesSql(outbox),
  };
  const inboxStatements: Record<string, string> = {
    backlog: inboxBacklogGaugesSql(inbox),
    claimDue: claimDueInboxSql(inbox),
    claimDueInbox: claimDueInbox(inbox, "stop", 45_000, 8),
    claimByIds: claimInboxByIdsSql(inbox),
    complete: completeInboxMessageSql(inbox),
    fail: failInboxMessageSql(inbox),
    insert: insertInboxMessagesSql(inbox),
    purge: purgeInboxMessagesSql(inbox),
    release: releaseInboxMessagesSql(inbox),
    retryDead: retryInboxDeadSql(inbox, filter),
  };

  it.each(Object.entries({ ...relayStatements }))("relay %s: the clock's SQL, never now()", (_, sql) => {
    expect(sql).toContain(`(${clock.sql})`);
    expect(sql).not.toMatch(now);
  });

  it.each(Object.entries(inboxStatements))("inbox %s: the clock's SQL, never now()", (_, sql) => {
    expect(sql).toContain(`(${clock.sql})`);
    expect(sql).not.toMatch(now);
  });

  it("the claim compares with the clock, and the lease and the backoff run from it", () => {
    expect(claimNext(outbox, 10)).toContain(`WHERE available_at <= (${clock.sql})`);
    expect(failInboxMessageSql(inbox)).toContain(`available_at = (${clock.sql}) + make_interval(`);
    expect(requeueMessagesSql(outbox)).toContain(`(${clock.sql}) + make_interval(secs => r.delay_ms / 1000)`);
  });

  it("the write side stays on the database's time (rows written before the clock's now are due)", () => {
    for (const keys of ["none", "one", "many"] as const) {
      const sql = insertMessagesSql(outbox, false, keys);
      expect(sql).toContain("date_trunc('milliseconds', clock_timestamp())");
      expect(sql).not.toContain(clock.sql);
    }
  });

  it("default names keep PostgreSQL's now(), and names are cached per schema and clock", () => {
    expect(outboxNames("shop").now).toBe("now()");
    expect(outboxNames("shop", databaseClock)).toBe(outboxNames("shop"));
    expect(claimNext(outboxNames("shop"), 10)).toContain("WHERE available_at <= now()");
    expect(inboxNames().now).toBe("now()");
    expect(outboxNames("shop", clock)).toBe(outbox);
    expect(inboxNames("shop", clock)).toBe(inbox);
    const other = new TestClock();
    expect(outboxNames("shop", other)).not.toBe(outbox);
    expect(outboxNames("shop", other).now).toBe(`(${other.sql})`);
    expect(outboxNames("other", clock).outboxTable).toBe('"other"."outbox_message"');
  });
});

describe("TestClock", () => {
  it("its SQL is the kit's function of its id; offset and now() start at real time", () => {
    const c = new TestClock();
    expect(c.sql).toBe(testClockNowSql(c.id));
    expect(c.sql).toMatch(/^"prisma_outbox_testing"\."now"\(E'clock_[0-9a-f]{32}'\)$/);
    expect(c.offsetMs).toBe(0);
    expect(Math.abs(c.now().getTime() - Date.now())).toBeLessThan(50);
  });

  it("advance() without a database moves the offset and calls the listeners; unsubscribe stops them", async () => {
    const c = new TestClock();
    let calls = 0;
    const off = c.onAdvance(() => calls++);
    c.onAdvance(() => {
      throw new Error("a listener's failure is its own");
    });
    await c.advance(60_000);
    await c.advance(0.5);
    expect(c.offsetMs).toBe(60_000.5);
    expect(calls).toBe(2);
    expect(c.now().getTime() - Date.now()).toBeGreaterThan(59_000);
    off();
    await c.advance(1);
    expect(calls).toBe(2);
  });

  it.each([[-1], [Number.NaN], [Number.POSITIVE_INFINITY], ["5"], [undefined]])(
    "advance(%j) is refused with OutboxConfigError, the clock unmoved",
    async (ms) => {
      const c = new TestClock();
      await expect(c.advance(ms as number)).rejects.toThrow(OutboxConfigError);
      await expect(c.advance(ms as number)).rejects.toThrow(/Expected `ms` of clock.advance\(\) to be a finite/);
      expect(c.offsetMs).toBe(0);
    },
  );

  it("a clock id that could inject anything is refused", () => {
    expect(() => testClockNowSql("x'); DROP TABLE t; --")).toThrow(TypeError);
  });
});

describe("the `clock` option", () => {
  const base = { databaseUrl: "postgres://h/d", amqpUrl: "amqp://h" };
  const notClocks: unknown[] = [{}, { sql: "" }, { sql: "now()" }, { sql: 1, onAdvance: () => () => {} }, "now()"];

  it.each(notClocks)("createRelay() refuses %j", (value) => {
    expect(() => createRelay({ ...base, clock: value as Clock })).toThrow(OutboxConfigError);
    expect(() => createRelay({ ...base, clock: value as Clock })).toThrow(/Expected `clock` to be a clock/);
  });

  it.each(notClocks)("the inbox's start() refuses %j", (value) => {
    expect(() => checkConnection({ ...base, clock: value as Clock })).toThrow(/Expected `clock` to be a clock/);
  });

  it("takes a TestClock, and defaults to PostgreSQL's now()", () => {
    expect(createRelay({ ...base, clock }).options.clock).toBe(clock);
    expect(createRelay(base).options.clock).toBe(databaseClock);
    expect(checkConnection({ ...base, clock }).clock).toBe(clock);
    expect(checkConnection(base).clock).toBe(databaseClock);
  });
});
