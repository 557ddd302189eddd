// The soak run's verdict: for each figure of each long-lived worker (and the workers' PostgreSQL sessions), its value
// at the start of the last three quarters of the load (read outside the faults: startPoints), at the calm end (after draining, no load, no fault), its
// maximum, and its slope per hour over that window; each held to a bound. Two sets of bounds: the full run's
// (`npm run soak`, 60 min) and the short run's (the reliability suite's 3 minutes: wider where noise dominates, and no
// slope bound, which a few minutes cannot estimate).
//
// Why these bounds: memory may move with the load and the GC, so it is bounded by its trend (heap after a forced GC,
// MiB per hour) and by end minus start. Everything that is counted (handles, timers, sockets, connections, channels,
// listeners, signals) must come back to where it started once the load and the faults are over: a leak of one per
// reconnect, with a fault every 30 s, would add 100 or more per hour; the margins allow a few in flight.
import type { SoakRun } from "./soak.js";
import { LONG_LIVED } from "./soak.js";

export type Figure =
  | "heapMiB"
  | "rssMiB"
  | "resources"
  | "timers"
  | "sockets"
  | "pgClients"
  | "pgOpen"
  | "pgStale"
  | "pgStaleApp"
  | "pgListeners"
  | "pgMaxListeners"
  | "amqpConnections"
  | "amqpOpen"
  | "amqpChannels"
  | "amqpListeners"
  | "signals"
  | "signalListeners"
  | "processListeners"
  | "warnings";

export interface Bound {
  /** Largest end - start. */
  delta?: number;
  /** Largest slope over the window, per hour. */
  perHour?: number;
  /** Largest value at the end, whatever the start. */
  atMost?: number;
}

export type Bounds = Record<Figure, Bound> & { dbSessions: Bound };

export const FULL_BOUNDS: Bounds = {
  heapMiB: { perHour: 5, delta: 8 },
  rssMiB: { perHour: 30, delta: 40 },
  resources: { delta: 3 },
  timers: { delta: 2 },
  sockets: { delta: 1 },
  pgClients: { delta: 2 },
  pgOpen: { delta: 1 },
  pgStale: { delta: 1 },
  // Prisma's transaction manager keeps its last 100 closed transactions and their clients (probe.ts): per client.
  pgStaleApp: { atMost: 100 },
  // Shown, not bounded: the sum moves with the pools' sizes (~30 per client); a leak on one client shows in the max.
  pgListeners: {},
  pgMaxListeners: { delta: 2 },
  amqpConnections: { delta: 0 },
  amqpOpen: { delta: 0 },
  amqpChannels: { delta: 0 },
  amqpListeners: { delta: 4 },
  signals: { delta: 3 },
  signalListeners: { delta: 2 },
  processListeners: { delta: 0 },
  warnings: { atMost: 0 },
  dbSessions: { delta: 1 },
};

export const SHORT_BOUNDS: Bounds = {
  ...FULL_BOUNDS,
  heapMiB: { delta: 12 },
  rssMiB: { delta: 60 },
  resources: { delta: 4 },
  timers: { delta: 3 },
  sockets: { delta: 2 },
  pgClients: { delta: 3 },
  pgMaxListeners: { delta: 3 },
  amqpConnections: { delta: 1 },
  amqpListeners: { delta: 6 },
};

export interface Row {
  who: string;
  figure: string;
  start: number;
  end: number;
  max: number;
  perHour: number;
  bound: string;
  ok: boolean;
}

const median = (xs: number[]): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Least-squares slope of y over t (seconds), per hour. */
function slopePerHour(points: Array<{ t: number; y: number }>): number {
  if (points.length < 3) return 0;
  const mt = points.reduce((a, p) => a + p.t, 0) / points.length;
  const my = points.reduce((a, p) => a + p.y, 0) / points.length;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.y - my);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 3600;
}

/** The window: from a quarter of the load to its end, then the calm end. */
export function windowOf(run: SoakRun) {
  const from = run.loadEndT / 4;
  return { from, startUntil: from + Math.max((run.loadEndT - from) / 10, 3 * (run.sampleMs / 1000)) };
}

/** Seconds a worker may take to settle after a fault ends (reconnect with backoff, LISTEN again, pools refilled). */
const settleS = (run: SoakRun) => Math.max(6, (2 * run.sampleMs) / 1000);

/** Whether second t is outside every fault and the settling after it. Runs saved before `from` was kept: 10 s before. */
const calm = (run: SoakRun, t: number) => !run.faults.some((f) => t >= (f.from ?? f.t - 10) && t <= f.t + settleS(run));

/**
 * The samples the start is read from: the start window's samples taken outside the faults, the window widened a step
 * at a time until there are 3. A worker caught reconnecting (no connection, half its listeners) is not its start: in
 * the short run, with a fault every 12 s, a broker cut can cover most of a 13-s window, and a start of 0.5 connections
 * would fail a worker whose end is its healthy 1.
 */
function startPoints(points: Array<{ t: number; y: number }>, run: SoakRun) {
  const { from, startUntil } = windowOf(run);
  const step = startUntil - from;
  for (let until = startUntil; ; until += step) {
    const picked = points.filter((p) => p.t >= from && p.t <= until && calm(run, p.t));
    if (picked.length >= 3) return picked;
    if (until >= run.loadEndT) {
      return picked.length > 0 ? picked : points.filter((p) => p.t >= from && p.t <= startUntil);
    }
  }
}

function judge(who: string, figure: string, points: Array<{ t: number; y: number }>, run: SoakRun, bound: Bound): Row {
  const { from } = windowOf(run);
  const inWindow = points.filter((p) => p.t >= from);
  const start = median(startPoints(points, run).map((p) => p.y));
  const end = median(points.filter((p) => p.t >= run.drainedT).map((p) => p.y));
  const max = Math.max(...inWindow.map((p) => p.y));
  const perHour = slopePerHour(inWindow.filter((p) => p.t <= run.loadEndT));
  const parts: string[] = [];
  let ok = Number.isFinite(start) && Number.isFinite(end);
  if (Object.keys(bound).length === 0) parts.push("(shown only)");
  if (bound.delta !== undefined) {
    parts.push(`end-start <= ${bound.delta}`);
    ok &&= end - start <= bound.delta;
  }
  if (bound.perHour !== undefined) {
    parts.push(`slope <= ${bound.perHour}/h`);
    ok &&= perHour <= bound.perHour;
  }
  if (bound.atMost !== undefined) {
    parts.push(`end <= ${bound.atMost}`);
    ok &&= end <= bound.atMost;
  }
  return { who, figure, start, end, max, perHour, bound: parts.join(", "), ok };
}

/** One row per (long-lived worker, figure) and per worker application_name's PostgreSQL sessions. */
export function analyse(run: SoakRun, bounds: Bounds): Row[] {
  const rows: Row[] = [];
  for (const slot of LONG_LIVED) {
    const own = run.samples.filter((s) => s.slot === slot);
    for (const figure of Object.keys(bounds).filter((f) => f !== "dbSessions") as Figure[]) {
      rows.push(
        judge(
          slot,
          figure,
          own.map((s) => ({ t: s.t, y: s[figure] })),
          run,
          bounds[figure],
        ),
      );
    }
  }
  const names = [...new Set(run.db.flatMap((d) => Object.keys(d.sessions)))].sort();
  for (const name of names) {
    const points = run.db.map((d) => ({ t: d.t, y: d.sessions[name] ?? 0 }));
    rows.push(judge("postgres", `sessions '${name}'`, points, run, bounds.dbSessions));
  }
  return rows;
}

/** The ledger's checks: 0 lost, 0 double effects, nothing rolled back handled, everything drained, clean exits. */
export function ledgerProblems(run: SoakRun): string[] {
  const l = run.ledger;
  const problems: string[] = [];
  if (l.lost > 0) problems.push(`${l.lost} lost (e.g. ${l.missing.join(", ")})`);
  if (l.doubles > 0) problems.push(`${l.doubles} double effects`);
  if (l.phantoms > 0) problems.push(`${l.phantoms} rolled-back writes handled`);
  for (const [what, n] of Object.entries(l.drained)) if (n !== 0) problems.push(`not drained: ${what} = ${n}`);
  for (const [slot, code] of Object.entries(l.exitCodes)) if (code !== 0) problems.push(`${slot} exited ${code}`);
  for (const c of l.crashes ?? []) {
    const why = c.lastLines.find((line) => /Error|error:/.test(line)) ?? "";
    problems.push(`${c.slot} pid ${c.pid} exited by itself (${c.exit}) at ${c.t.toFixed(0)} s: ${why.trim()}`);
  }
  if (l.writeErrors.length > 0) problems.push(`${l.writeErrors.length} app writes failed: ${l.writeErrors[0]}`);
  return problems;
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2));

/** The table as text (one line per row, aligned). */
export function formatTable(rows: Row[]): string {
  const cells = rows.map((r) => [
    r.who,
    r.figure,
    fmt(r.start),
    fmt(r.end),
    fmt(r.max),
    fmt(r.perHour),
    r.bound,
    r.ok ? "ok" : "FAIL",
  ]);
  const head = ["worker", "figure", "start", "end", "max", "slope/h", "bound", "verdict"];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => v.padEnd(widths[i]!)).join("  ");
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}
