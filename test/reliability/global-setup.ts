// Global setup of vitest.reliability.config.ts (after test/support/global-setup.ts): gives the run a rows file that
// every scenario appends its row to, and at the end of the run writes them as one JSON file and prints the table.
//
// The JSON file is RELIABILITY_REPORT when set, else prisma-outbox-reliability-<run>.json in the OS temp folder.
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

const run = `${new Date().toISOString().replace(/[:.]/g, "-")}-${process.pid}`;
const rowsFile = join(tmpdir(), `prisma-outbox-reliability-${run}.jsonl`);
const reportFile = process.env.RELIABILITY_REPORT || join(tmpdir(), `prisma-outbox-reliability-${run}.json`);
const size = process.env.CHAOS === "1" ? "chaos" : "default";
let startedAt = 0;

const COLUMNS = ["scenario", "messages", "delivered", "lost", "duplicates", "maxDelayMs", "notes"] as const;

export function setup(project: TestProject) {
  startedAt = Date.now();
  writeFileSync(rowsFile, "");
  project.provide("reliabilityRows", rowsFile);
}

export function teardown() {
  const wallTimeMs = Date.now() - startedAt;
  const rows = existsSync(rowsFile)
    ? readFileSync(rowsFile, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .sort((a, b) => String(a.scenario).localeCompare(String(b.scenario)))
    : [];
  rmSync(rowsFile, { force: true });
  writeFileSync(
    reportFile,
    `${JSON.stringify({ run, size, startedAt: new Date(startedAt), wallTimeMs, rows }, null, 2)}\n`,
  );
  const table = rows.map((r) => COLUMNS.map((c) => (r[c] === undefined ? "" : String(r[c]))));
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...table.map((cells) => cells[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i > 0 && i < 6 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  const out = [
    "",
    `Reliability suite (${size} size): ${rows.length} scenario rows, wall time ${(wallTimeMs / 1000).toFixed(1)} s`,
    "maxDelayMs: longest write-to-first-arrival delay; writtenAt is taken before the write, so it bounds commit-to-delivery from above.",
    line(COLUMNS),
    line(widths.map((w) => "-".repeat(w))),
    ...table.map(line),
    `rows: ${reportFile}`,
    "",
  ];
  console.log(out.join("\n"));
}
