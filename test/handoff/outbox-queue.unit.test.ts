import { describe, expect, it } from "vitest";
import { OutboxConfigError, OutboxQueue } from "../../src/index.js";

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("OutboxQueue", () => {
  it("keeps ids until a consumer attaches, then drains them in batches", async () => {
    const q = new OutboxQueue({ batchSize: 3, concurrency: 1 });
    q.push(["1", "2", "3", "4", "5"]);
    expect(q.pending).toBe(5);
    const batches: string[][] = [];
    q.attach(async (ids) => {
      batches.push(ids);
    });
    await q.onIdle();
    expect(batches).toEqual([
      ["1", "2", "3"],
      ["4", "5"],
    ]);
    expect(q.pending).toBe(0);
  });

  it("is bounded: beyond maxPending it drops ids and counts them", () => {
    const q = new OutboxQueue({ maxPending: 4 });
    q.push(["1", "2", "3"]);
    q.push(["4", "5", "6"]);
    expect(q.pending).toBe(4);
    expect(q.dropped).toBe(2);
  });

  it("gathers ids into one batch while the consumers are busy, and never runs more than `concurrency`", async () => {
    const q = new OutboxQueue({ batchSize: 100, concurrency: 2 });
    let running = 0;
    let most = 0;
    const batches: string[][] = [];
    const gates: Array<() => void> = [];
    q.attach(async (ids) => {
      batches.push(ids);
      running++;
      most = Math.max(most, running);
      await new Promise<void>((r) => gates.push(r));
      running--;
    });
    q.push(["a"]);
    q.push(["b"]);
    await tick();
    for (let i = 0; i < 10; i++) q.push([`c${i}`]);
    await tick();
    expect(batches).toEqual([["a"], ["b"]]);
    for (const open of gates.splice(0)) open();
    await tick();
    expect(batches[2]).toEqual(Array.from({ length: 10 }, (_, i) => `c${i}`));
    for (const open of gates.splice(0)) open();
    await q.onIdle();
    expect(most).toBe(2);
  });

  it("a consumer that throws does not stop the queue", async () => {
    const q = new OutboxQueue({ batchSize: 1, concurrency: 1 });
    const errors: unknown[] = [];
    const seen: string[] = [];
    q.attach(
      async (ids) => {
        seen.push(...ids);
        if (ids[0] === "bad") throw new Error("consumer failed");
      },
      (e) => errors.push(e),
    );
    q.push(["bad", "good"]);
    await q.onIdle();
    expect(seen).toEqual(["bad", "good"]);
    expect(errors).toHaveLength(1);
  });

  it("allows one consumer at a time, and a detached queue keeps new ids for the next", async () => {
    const q = new OutboxQueue();
    const detach = q.attach(async () => {});
    expect(() => q.attach(async () => {})).toThrow(OutboxConfigError);
    await detach();
    q.push(["x"]);
    await tick();
    expect(q.pending).toBe(1);
  });

  it.each([
    [{ maxPending: 0 }, /`maxPending` to be an integer >= 1, got 0/],
    [{ concurrency: 1.5 }, /`concurrency` to be an integer >= 1, got 1.5/],
    [{ batchSize: -1 }, /`batchSize`/],
  ])("rejects %j", (options, message) => {
    expect(() => new OutboxQueue(options)).toThrow(message);
  });
});
