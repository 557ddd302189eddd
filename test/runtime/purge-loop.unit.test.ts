// The shared retention loop (runtime/purge-loop.ts), without a database: batches until one comes back short, a pause
// between, one pass at a time on the timer, idempotent start and stop, stop cuts a pass short and waits for it, a
// failing pass logged by the timer and rejected to a direct caller.
import { afterEach, describe, expect, it } from "vitest";
import { PurgeLoop, type PurgeLoopOptions } from "../../src/runtime/purge-loop.js";

const loops: PurgeLoop[] = [];
afterEach(async () => {
  await Promise.all(loops.splice(0).map((l) => l.stop()));
});

function loopOf(batches: Array<number | Error>, options: Partial<PurgeLoopOptions> = {}) {
  const warnings: Array<{ message: string; fields: Record<string, unknown> | undefined }> = [];
  const purged: number[] = [];
  let calls = 0;
  const loop = new PurgeLoop({
    batch: async () => {
      const next = batches[calls++] ?? 0;
      if (next instanceof Error) throw next;
      return next;
    },
    batchSize: 3,
    intervalMs: 20,
    what: "expired things",
    logger: { info() {}, warn: (message, fields) => warnings.push({ message, fields }), error() {} },
    onPurged: (count) => purged.push(count),
    ...options,
  });
  loops.push(loop);
  return { loop, warnings, purged, calls: () => calls };
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("PurgeLoop", () => {
  it("a pass deletes batch after batch while they come back full, and reports the total once", async () => {
    const { loop, purged, calls } = loopOf([3, 3, 1, 3]);
    expect(await loop.purge()).toBe(7);
    expect(calls()).toBe(3);
    expect(purged).toEqual([7]);
    // Nothing expired: no report.
    expect(await loopOf([0]).loop.purge()).toBe(0);
  });

  it("a failing batch rejects a direct call, after reporting what the pass deleted before it", async () => {
    const error = Object.assign(new Error("connection lost"), { code: "57P01" });
    const { loop, purged } = loopOf([3, error]);
    await expect(loop.purge()).rejects.toBe(error);
    expect(purged).toEqual([3]);
  });

  it("the timer runs passes until stop(); a failure is logged and the next tick tries again", async () => {
    const error = Object.assign(new Error("connection lost"), { code: "57P01" });
    const { loop, warnings, purged } = loopOf([error, 2]);
    loop.start();
    loop.start(); // idempotent: one timer
    await expect.poll(() => purged).toEqual([2]);
    expect(warnings).toEqual([
      {
        message: "purging expired things failed; next try in 20 ms: connection lost",
        fields: { code: "57P01", error: "connection lost" },
      },
    ]);
    await loop.stop();
    await loop.stop(); // idempotent
  });

  it("stop() cuts a pass short after its current batch and waits for it; start() after stop() starts over", async () => {
    let release: (() => void) | undefined;
    let calls = 0;
    const loop = new PurgeLoop({
      batch: () => {
        calls++;
        return new Promise<number>((resolve) => {
          release = () => resolve(3);
        });
      },
      batchSize: 3,
      intervalMs: 10,
      what: "expired things",
      logger: { info() {}, warn() {}, error() {} },
    });
    loops.push(loop);
    loop.start();
    await expect.poll(() => release).toBeDefined();
    let stopped = false;
    const stopping = loop.stop().then(() => {
      stopped = true;
    });
    await wait(30);
    expect(stopped).toBe(false); // waits for the batch in flight
    release!();
    await stopping;
    expect(calls).toBe(1); // a full batch, yet no next one after stop
    await wait(30);
    expect(calls).toBe(1); // the timer is gone
    release = undefined;
    loop.start();
    await expect.poll(() => release).toBeDefined();
    expect(calls).toBe(2);
    release!();
  });
});
