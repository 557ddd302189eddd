// Pure pieces of the relay's liveness: byte-bounded parts, what a database error means, the publish lock, options.
import { describe, expect, it } from "vitest";
import { OutboxConfigError } from "../../src/index.js";
import { partsByBytes } from "../../src/relay/batch.js";
import { resolveRelayOptions } from "../../src/relay/options.js";
import { PublishLock } from "../../src/relay/publish-lock.js";
import { describePgError } from "../../src/runtime/pg.js";

describe("partsByBytes", () => {
  const size = (n: number) => n;
  it("keeps order, fills each part up to the bound, and puts a larger item alone", () => {
    expect(partsByBytes([3, 3, 3, 3], size, 6)).toEqual([
      [3, 3],
      [3, 3],
    ]);
    expect(partsByBytes([1, 10, 1, 1], size, 5)).toEqual([[1], [10], [1, 1]]);
    expect(partsByBytes([], size, 5)).toEqual([]);
    expect(partsByBytes([2, 2, 2], size, 100)).toEqual([[2, 2, 2]]);
  });
});

describe("describePgError", () => {
  it("adds the code, and tells what retrying cannot fix", () => {
    expect(describePgError(Object.assign(new Error('database "x" does not exist'), { code: "3D000" }))).toEqual({
      message: 'database "x" does not exist (3D000)',
      code: "3D000",
      permanent: true,
    });
    expect(
      describePgError(Object.assign(new Error("permission denied for table t"), { code: "42501" })).permanent,
    ).toBe(true);
    expect(describePgError(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })).permanent).toBe(
      false,
    );
    expect(describePgError(Object.assign(new Error("terminating connection"), { code: "57P01" })).permanent).toBe(
      false,
    );
    // PgBouncer refuses a wrong password with 08P01, a protocol violation by its code.
    expect(
      describePgError(Object.assign(new Error("password authentication failed"), { code: "08P01" })).permanent,
    ).toBe(true);
    expect(describePgError("plain").message).toBe("plain");
  });
});

describe("PublishLock", () => {
  const tick = () => new Promise((r) => setTimeout(r, 5));
  it("lets shared holders run together, and an exclusive one alone, after them and before newer shared ones", async () => {
    const lock = new PublishLock();
    const log: string[] = [];
    let release1!: () => void;
    const s1 = lock.shared(() => new Promise<void>((r) => (release1 = () => r(log.push("s1 end") as never))));
    const s2 = lock.shared(async () => log.push("s2"));
    await tick();
    const x = lock.exclusive(async () => {
      log.push("x start");
      await tick();
      log.push("x end");
    });
    const s3 = lock.shared(async () => log.push("s3"));
    await tick();
    expect(log).toEqual(["s2"]); // x waits for s1; s3 waits for x
    release1();
    await Promise.all([s1, s2, x, s3]);
    expect(log).toEqual(["s2", "s1 end", "x start", "x end", "s3"]);
  });
});

describe("relay options (liveness and poolers)", () => {
  const base = { databaseUrl: "postgresql://u:p@h/db", amqpUrl: "amqp://h" };
  it("defaults: 4 MiB parts, LISTEN checked every 5 s, listenUrl = databaseUrl, no sweep age without a fast path", () => {
    const o = resolveRelayOptions({ ...base, queue: false }).options;
    expect(o.batchMaxBytes).toBe(4 * 1024 * 1024);
    expect(o.listenCheckIntervalMs).toBe(5_000);
    expect(o.listenUrl).toBeUndefined(); // LISTEN on the relay's database
    expect(o.sweepMinAgeMs).toBe(5_000);
    expect(resolveRelayOptions({ ...base, queue: false, listen: false }).options.sweepMinAgeMs).toBe(0);
  });
  it("refuses what cannot work, saying what to fix", () => {
    expect(() => resolveRelayOptions({ ...base, batchMaxBytes: 10 })).toThrow(
      new OutboxConfigError("Expected `batchMaxBytes` to be an integer >= 1024, got 10."),
    );
    expect(() => resolveRelayOptions({ ...base, listenUrl: "http://x" })).toThrow(/`listenUrl` to be a postgres:/);
    expect(() => resolveRelayOptions({ ...base, logger: {} as never })).toThrow(
      /`logger` to be \{ info, warn, error \}/,
    );
  });
  it("a logger that throws is guarded", () => {
    const { options: o } = resolveRelayOptions({
      ...base,
      logger: {
        info() {
          throw new Error("x");
        },
        warn() {},
        error() {},
      },
    });
    expect(() => o.logger.info("hello")).not.toThrow();
  });
});
