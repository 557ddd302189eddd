// `npm run soak`: the soak run (test/soak/soak.ts) on a database of its own, then its table and plot.
//   SOAK_MINUTES         length of the load (default 60); under 20, the short run's bounds apply
//   SOAK_SAMPLE_MS       how often each worker samples itself (default 5000)
//   SOAK_FAULT_EVERY_MS  one fault every this many ms (default 30000)
//   SOAK_OPS_PER_SECOND  the app's write operations per second, ~1.2 messages each (default 20)
// Writes soak-output/<timestamp>/{run.json,table.txt,plot.svg}; exits 1 when a bound or a ledger check failed.
import { benchDatabase } from "../../bench/support.js";
import { killAll } from "../support/process-harness.js";
import { FULL_BOUNDS, SHORT_BOUNDS } from "./analysis.js";
import { soakReport, writeSoakOutput } from "./report.js";
import { outputDir, runSoak } from "./soak.js";

const env = process.env;
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
  // A slope per hour is not measurable in a few minutes: short runs get the short run's bounds.
  const full = minutes >= 20;
  const report = soakReport(run, full ? FULL_BOUNDS : SHORT_BOUNDS, full ? "full" : "short");
  const plot = writeSoakOutput(dir, run, report);
  console.log(`${report.table}\n\n${report.summary}\nplot: ${plot}`);
  exitCode = report.verdict === "PASS" ? 0 : 1;
} finally {
  await killAll();
  await database.cleanup();
}
process.exit(exitCode);
