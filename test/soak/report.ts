// The soak run's verdict in words, and its output folder (run.json, table.txt, plot.svg): shared by `npm run soak`
// (test/soak/main.ts) and the reliability suite's short run (test/reliability/soak.test.ts).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { analyse, type Bounds, formatTable, ledgerProblems, type Row } from "./analysis.js";
import { renderSvg } from "./plot.js";
import type { SoakRun } from "./soak.js";

export interface SoakReport {
  verdict: "PASS" | "FAIL";
  rows: Row[];
  /** Rows over their bound. */
  failed: Row[];
  /** Ledger checks that failed (lost, doubles, not drained, ...). */
  problems: string[];
  /** A few lines: verdict, ledger, faults, timeline, and each problem. */
  summary: string;
  table: string;
}

export function soakReport(run: SoakRun, bounds: Bounds, boundsName: string): SoakReport {
  const rows = analyse(run, bounds);
  const problems = ledgerProblems(run);
  const failed = rows.filter((r) => !r.ok);
  const verdict = problems.length === 0 && failed.length === 0 ? "PASS" : "FAIL";
  const l = run.ledger;
  const perKind = new Map<string, number>();
  for (const f of run.faults) perKind.set(f.kind, (perKind.get(f.kind) ?? 0) + 1);
  const summary = [
    `soak ${run.minutes} min (${boundsName} bounds): ${verdict}`,
    `ledger: ${l.committed} committed (${l.requests} requests), ${l.rolledBack} rolled back; lost ${l.lost}, double effects ${l.doubles}, rolled-back handled ${l.phantoms}; drained ${JSON.stringify(l.drained)}; exits ${JSON.stringify(l.exitCodes)}`,
    `faults: ${[...perKind].map(([k, n]) => `${k} x${n}`).join(", ")}`,
    `timeline: load until ${run.loadEndT.toFixed(0)} s, drained at ${run.drainedT.toFixed(0)} s, end ${run.endT.toFixed(0)} s; ${run.samples.length} worker samples`,
    ...problems.map((p) => `ledger problem: ${p}`),
    ...failed.map(
      (r) =>
        `bound exceeded: ${r.who} ${r.figure}: start ${r.start}, end ${r.end}, slope ${r.perHour.toFixed(2)}/h (${r.bound})`,
    ),
  ].join("\n");
  return { verdict, rows, failed, problems, summary, table: formatTable(rows) };
}

/** Writes run.json, table.txt and plot.svg into `dir`; returns the plot's path. */
export function writeSoakOutput(dir: string, run: SoakRun, report: SoakReport): string {
  writeFileSync(join(dir, "run.json"), JSON.stringify(run));
  writeFileSync(join(dir, "table.txt"), `${report.summary}\n\n${report.table}\n`);
  const plot = join(dir, "plot.svg");
  writeFileSync(plot, renderSvg(run, `soak ${run.minutes} min: ${report.verdict}`));
  return plot;
}
