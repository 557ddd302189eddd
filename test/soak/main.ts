// `npm run soak`: the soak run (test/soak/soak.ts) on a database of its own, then its table and plot.
//   SOAK_MINUTES         length of the load (default 60); under 20, the short run's bounds apply
//   SOAK_SAMPLE_MS       how often each worker samples itself (default 5000)
//   SOAK_FAULT_EVERY_MS  one fault every this many ms (default 30000)
//   SOAK_OPS_PER_SECOND  the app's write operations per second, ~1.2 messages each (default 20)
//   SOAK_FROM            a run.json of an earlier run: judged and plotted again (new bounds, a fixed plot), no run
// Writes soak-output/<timestamp>/{run.json,table.txt,plot.svg}; exits 1 when a bound or a ledger check failed.
import { readFileSync } from "node:fs";
import { benchDatabase } from "../../bench/support.js";
import { killAll } from "../support/process-harness.js";
import { FULL_BOUNDS, SHORT_BOUNDS } from "./analysis.js";
import { soakReport, writeSoakOutput } from "./report.js";
import { outputDir, runSoak, type SoakRun } from "./soak.js";

const env = process.env;

/** Judges and plots a run; 0 when it passed. */
function judge(run: SoakRun, dir: string): number {
  // A slope per hour is not measurable in a few minutes: short runs get the short run's bounds.
  const full = run.minutes >= 20;
  const report = soakReport(run, full ? FULL_BOUNDS : SHORT_BOUNDS, full ? "full" : "short");
  const plot = writeSoakOutput(dir, run, report);
  console.log(`${report.table}\n\n${report.summary}\nplot: ${plot}`);
  return report.verdict === "PASS" ? 0 : 1;
}

if (env.SOAK_FROM) {
  process.exit(judge(JSON.parse(readFileSync(env.SOAK_FROM, "utf8")) as SoakRun, outputDir()));
}
const minutes = Number(env.SOAK_MINUTES ?? 60);
const dir = outputDir();
const database = await benchDatabase();
let exitCode = 1;
try {
  console.log(`soak: ${minutes} min; output in ${dir}`);
  const run = await runSoak({
    databaseUrl: database.url,
    amqpUrl: database.amqpUrl,
    minutes,
    sampleMs: Number(env.SOAK_SAMPLE_MS ?? 5_000),
    faultEveryMs: Number(env.SOAK_FAULT_EVERY_MS ?? 30_000),
    opsPerSecond: Number(env.SOAK_OPS_PER_SECOND ?? 20),
  });
  exitCode = judge(run, dir);
} finally {
  await killAll();
  await database.cleanup();
}
process.exit(exitCode);
