// The soak run's verdict on made-up runs: flat figures with spikes at the faults pass; a figure that steps up at each
// fault and never comes back fails, as does heap that climbs steadily; the warm-up quarter is not judged.
import { expect, it } from "vitest";
import { analyse, FULL_BOUNDS, SHORT_BOUNDS } from "./analysis.js";
import type { Sample, SoakRun } from "./soak.js";

const FLAT: Omit<Sample, "slot" | "t" | "incarnation" | "at"> = {
  pid: 1,
  rssMiB: 100,
  heapMiB: 20,
  resources: 12,
  timers: 6,
  sockets: 4,
  pgClients: 4,
  pgOpen: 4,
  pgStale: 0,
  pgStaleApp: 0,
  pgListeners: 120,
  pgMaxListeners: 31,
  amqpConnections: 1,
  amqpOpen: 1,
  amqpChannels: 1,
  amqpListeners: 22,
  signals: 3,
  signalListeners: 3,
  processListeners: 13,
  warnings: 0,
};

/** A 60-minute run sampled every 5 s, a fault every 30 s; `at(t)` changes the flat figures at second t. */
function run(at: (t: number) => Partial<Sample> = () => ({})): SoakRun {
  const samples: Sample[] = [];
  for (let t = 5; t <= 3_630; t += 5) {
    for (const slot of ["relay-1", "inbox-1"] as const) {
      samples.push({ ...FLAT, slot, t, incarnation: 0, at: t * 1000, ...at(t) });
    }
  }
  return {
    minutes: 60,
    sampleMs: 5_000,
    loadEndT: 3_600,
    drainedT: 3_605,
    endT: 3_630,
    samples,
    db: [],
    faults: [],
    ledger: {} as SoakRun["ledger"],
  };
}

const failing = (r: SoakRun, bounds = FULL_BOUNDS) =>
  analyse(r, bounds)
    .filter((row) => !row.ok)
    .map((row) => `${row.who} ${row.figure}`);

it("flat figures with spikes during faults pass", () => {
  const spiky = run((t) => (t % 30 === 0 ? { resources: 20, signalListeners: 6, pgOpen: 8 } : {}));
  expect(failing(spiky)).toEqual([]);
});

it("one abort listener more per LISTEN reconnect (every 180 s) fails, in the full and the short bounds", () => {
  const leak = run((t) => ({ signalListeners: 3 + Math.floor(t / 180) }));
  expect(failing(leak)).toEqual(["relay-1 signalListeners", "inbox-1 signalListeners"]);
  expect(failing(leak, SHORT_BOUNDS)).toEqual(["relay-1 signalListeners", "inbox-1 signalListeners"]);
});

it("heap climbing 8 MiB an hour fails the full run's slope bound; growth during warm-up only is not judged", () => {
  expect(failing(run((t) => ({ heapMiB: 20 + (8 * t) / 3600 })))).toEqual(["relay-1 heapMiB", "inbox-1 heapMiB"]);
  expect(failing(run((t) => ({ heapMiB: t < 900 ? 10 + t / 90 : 20 })))).toEqual([]);
});

it("a closed pg client kept per fault fails", () => {
  expect(failing(run((t) => ({ pgStale: Math.floor(t / 600) })))).toEqual(["relay-1 pgStale", "inbox-1 pgStale"]);
});

it("the app's closed clients are held to Prisma's 100 closed transactions, ours to the start's count", () => {
  // The full run's calm end: the handlers' pool closed its idle clients, Prisma's transaction history still held 3.
  expect(failing(run((t) => ({ pgStaleApp: t > 3550 ? 3 : 0 })))).toEqual([]);
  expect(failing(run((t) => ({ pgStaleApp: t > 3550 ? 101 : 0 })))).toEqual([
    "relay-1 pgStaleApp",
    "inbox-1 pgStaleApp",
  ]);
  expect(failing(run((t) => ({ pgStale: t > 3550 ? 3 : 0 })))).toEqual(["relay-1 pgStale", "inbox-1 pgStale"]);
});

it("a worker caught reconnecting in the short run's start window is judged by its calm samples there", () => {
  // 3 minutes sampled every 3 s, a fault every 12 s (from 12k to 12k + 2 s); during each fault and 5 s after it the
  // relay has no AMQP connection and half its listeners (what the reliability suite's run S once saw).
  const faults = Array.from({ length: 14 }, (_, i) => ({ from: 12 * (i + 1), t: 12 * (i + 1) + 2 }));
  const samples: Sample[] = [];
  for (let t = 3; t <= 200; t += 3) {
    const cut = t <= 180 && faults.some((f) => t >= f.from && t <= f.t + 5);
    const at = cut ? { amqpOpen: 0, amqpChannels: 0, amqpListeners: 11 } : {};
    for (const slot of ["relay-1", "inbox-1"] as const) {
      samples.push({ ...FLAT, slot, t, incarnation: 0, at: t * 1000, ...at });
    }
  }
  const short: SoakRun = {
    ...run(),
    minutes: 3,
    sampleMs: 3_000,
    loadEndT: 180,
    drainedT: 185,
    endT: 200,
    samples,
    faults: faults.map((f) => ({ ...f, kind: "broker-cut" as const, note: "" })),
  };
  expect(failing(short, SHORT_BOUNDS)).toEqual([]);
  // Without the faults' marks the same samples read as a start of 0 connections: the end's 1 fails.
  expect(failing({ ...short, faults: [] }, SHORT_BOUNDS)).toContain("relay-1 amqpOpen");
});
