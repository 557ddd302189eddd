// DoctorWatch without a database: a pool whose every query fails (the database gone) changes nothing it knew; the
// inbox's own finding (the receiver's stall) is logged once when it starts and once when it ends, however many checks
// see it, and shows in warnings() meanwhile. Database-free.
import type pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { receiverStallFinding } from "../../src/inbox/health.js";
import { DoctorWatch } from "../../src/ops/doctor-watch.js";

const failing = { query: () => Promise.reject(new Error("connection refused")) } as unknown as pg.Pool;
const watches: DoctorWatch[] = [];
afterEach(async () => {
  for (const w of watches.splice(0)) await w.stop();
});

describe("DoctorWatch", () => {
  it("the receiver's stall: one warning when it starts, one info when it ends; checks in between say nothing", async () => {
    const lines: string[] = [];
    const logger = {
      info: (m: string, f?: Record<string, unknown>) => lines.push(`info ${m} ${f?.check}`),
      warn: (m: string, f?: Record<string, unknown>) => lines.push(`warn ${m} ${f?.check} ${f?.level}`),
      error: () => {},
    };
    let stalledSince: Date | undefined;
    const watch = new DoctorWatch({
      pool: failing,
      doctor: {},
      intervalMs: 1_000_000, // driven by checkNow() here
      logger,
      component: "inbox",
      local: () => [receiverStallFinding(stalledSince, 7)],
    });
    watches.push(watch);
    watch.start();
    await watch.checkNow();
    expect(watch.warnings()).toEqual([]);
    stalledSince = new Date("2026-01-01T00:00:00Z");
    for (let i = 0; i < 3; i++) await watch.checkNow();
    expect(watch.warnings()).toEqual([
      expect.stringMatching(
        /^doctor receiver-stalled \(error\): receiving stalled since 2026-01-01T00:00:00.000Z: 7 deliveries received and not stored; look at the inbox's log/,
      ),
    ]);
    expect(watch.findings()[0]!.details).toEqual({ stalledSince: "2026-01-01T00:00:00.000Z", unstored: 7 });
    stalledSince = undefined;
    await watch.checkNow();
    await watch.checkNow();
    expect(watch.warnings()).toEqual([]);
    expect(lines).toEqual([
      "warn doctor: a check found a problem receiver-stalled error",
      "info doctor: a check is fine again receiver-stalled",
    ]);
  });

  it("intervalMs 0: start() arms nothing; stop() is immediate", async () => {
    let calls = 0;
    const watch = new DoctorWatch({
      pool: failing,
      doctor: {},
      intervalMs: 0,
      logger: { info() {}, warn() {}, error() {} },
      component: "relay",
      local: () => {
        calls++;
        return [];
      },
    });
    watch.start();
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBe(0);
    await watch.stop();
  });
});
