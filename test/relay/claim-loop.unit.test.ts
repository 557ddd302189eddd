// The claim-loop skeleton shared by the drain loops and the sweeper (src/relay/claim-loop.ts), and the health report
// (src/relay/health.ts), without a database or a broker.
import { describe, expect, it } from "vitest";
import { BatchLimit } from "../../src/relay/batch-limit.js";
import { BrokerGate } from "../../src/relay/broker-gate.js";
import { claimLoop, type RoundOutcome } from "../../src/relay/claim-loop.js";
import { RelayRecord, relayHealth } from "../../src/relay/health.js";
import type { OutboxListener } from "../../src/relay/listener.js";
import { silentLogger } from "../../src/runtime/logger.js";

function gates() {
  const halt = new AbortController();
  const broker = new BrokerGate(halt.signal, () => {});
  const limit = new BatchLimit(100, 1_000, silentLogger);
  return { halt, gates: { halt: halt.signal, broker, limit } };
}

describe("claimLoop", () => {
  it("claims only once the broker is ready, and ends when a round says so", async () => {
    const { gates: g } = gates();
    const rounds: RoundOutcome[] = ["claimed", "skipped", "end"];
    let ran = 0;
    const loop = claimLoop(g, { pauseMs: () => 0, failed: () => {}, round: async () => rounds[ran++]! });
    await new Promise((r) => setTimeout(r, 20));
    expect(ran).toBe(0); // the broker has said nothing yet
    g.broker.started();
    g.broker.release();
    await loop;
    expect(ran).toBe(3);
  });

  it("counts failures in a row for the pause, resets them after a claim, not after a skipped round", async () => {
    const { gates: g } = gates();
    g.broker.started();
    const outcomes: Array<RoundOutcome | "fail"> = ["fail", "fail", "skipped", "fail", "claimed", "fail", "end"];
    const pauses: number[] = [];
    let failed = 0;
    let i = 0;
    await claimLoop(g, {
      pauseMs: (failures) => {
        pauses.push(failures);
        return 0;
      },
      failed: () => failed++,
      round: async () => {
        const outcome = outcomes[i++]!;
        if (outcome === "fail") throw new Error("batch failed");
        return outcome;
      },
    });
    expect(pauses).toEqual([0, 1, 2, 2, 3, 0, 1]);
    expect(failed).toBe(4);
  });

  it("ends when halted, during a pause or while waiting for the broker", async () => {
    const paused = gates();
    paused.gates.broker.started();
    let rounds = 0;
    const loop = claimLoop(paused.gates, {
      pauseMs: () => 60_000,
      failed: () => {},
      round: async () => {
        rounds++;
        return "claimed";
      },
    });
    paused.halt.abort();
    await loop;
    expect(rounds).toBe(0);

    const waiting = gates();
    const waitingLoop = claimLoop(waiting.gates, { pauseMs: () => 0, failed: () => {}, round: async () => "claimed" });
    waiting.halt.abort();
    waiting.gates.broker.release();
    await waitingLoop;
  });
});

describe("relayHealth", () => {
  const base = { sweepIntervalMs: 1_000, publishTimeoutMs: 1_000, listener: undefined, backlog: undefined };

  it("is ok when running with the database and broker up and a recent cycle", () => {
    const record = new RelayRecord();
    record.database = { connected: true };
    record.lastCycleAt = Date.now();
    const health = relayHealth({ ...base, state: "running", record, broker: "ready" });
    expect(health).toMatchObject({ ok: true, problems: [], warnings: [], broker: { connected: true, state: "ready" } });
    expect(health.lastBatchAt?.getTime()).toBe(record.lastCycleAt);
  });

  it("names every problem, and warns of a failing LISTEN", () => {
    const record = new RelayRecord();
    record.database = { connected: false, error: "connection refused" };
    const listener = {
      status: () => ({ listening: false, lostInARow: 3, lastError: new Error("LISTEN connection ended") }),
    } as unknown as OutboxListener;
    const health = relayHealth({ ...base, state: "running", record, broker: "blocked", listener });
    expect(health.ok).toBe(false);
    expect(health.problems).toEqual(["database: connection refused", "broker: blocked", "no batch has run yet"]);
    expect(health.broker).toEqual({ connected: true, state: "blocked" });
    expect(health.listen).toEqual({ listening: false, lostInARow: 3, error: "LISTEN connection ended" });
    expect(health.warnings[0]).toMatch(/^LISTEN lost 3 times in a row \(last: LISTEN connection ended\); /);
  });

  it("counts the events, and keeps the stats in their order", () => {
    const record = new RelayRecord();
    const error = new Error("x");
    record.count({ type: "published", path: "queue", count: 5 }, silentLogger);
    record.count({ type: "retry-scheduled", messageId: "m", attempts: 1, delayMs: 1, error }, silentLogger);
    record.count({ type: "dead-lettered", messageId: "m", attempts: 2, error, reason: "attempts" }, silentLogger);
    record.count({ type: "batch-failed", path: "sweep", count: 3, error }, silentLogger);
    expect(Object.entries(record.snapshot(7))).toEqual([
      ["published", 5],
      ["deadLettered", 1],
      ["retried", 1],
      ["failedBatches", 1],
      ["isolatedBatches", 0],
      ["batchLimit", 7],
      ["nacked", 0],
    ]);
  });
});
