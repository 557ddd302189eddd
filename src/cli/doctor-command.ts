// `prisma-outbox doctor`: the doctor's findings as a text report (a table of every check, then what each problem
// costs and what to do) or one JSON object (--json: the DoctorReport of src/ops/doctor.ts). The exit code is the
// worst level, for cron jobs and CI steps: 0 ok, 1 warning, 2 error; bad input 2; a database that cannot be reached
// 1 (2 when a person must fix the URL: describeFailure's rule, as for every command).
import { OutboxConfigError } from "../errors.js";
import { type DoctorReport, doctor } from "../ops/doctor.js";
import { levelRank } from "../ops/doctor-finding.js";
import { escapeControl, escapeJsonControl } from "../runtime/escape.js";
import { DOCTOR_HELP, parseDoctorConfig } from "./flags/doctor.js";
import { describeFailure, openOpsPool } from "./ops-database.js";
import { table } from "./table.js";

const MARK = { ok: "ok", warning: "WARNING", error: "ERROR" } as const;

export function formatDoctor(report: DoctorReport): string {
  const out: string[] = [];
  out.push(`doctor (schema ${escapeControl(report.schema)}): ${MARK[report.level]}`);
  out.push(
    table(
      ["level", "check", "summary"],
      report.findings.map((f) => [MARK[f.level], f.check, f.summary]),
    ),
  );
  for (const f of report.findings.filter((x) => x.level !== "ok")) {
    out.push("");
    out.push(`${MARK[f.level]} ${f.check}: ${escapeControl(f.summary)}`);
    out.push(`  cost: ${escapeControl(f.cost)}`);
    out.push(`  do:   ${escapeControl(f.action)}`);
  }
  return `${out.join("\n")}\n`;
}

export async function runDoctor(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let config: ReturnType<typeof parseDoctorConfig>;
  try {
    config = parseDoctorConfig(argv, env);
  } catch (error) {
    if (!(error instanceof OutboxConfigError)) throw error;
    process.stderr.write(`prisma-outbox doctor: ${error.message}\n`);
    return 2;
  }
  if (config.help) {
    process.stdout.write(DOCTOR_HELP);
    return 0;
  }
  const pool = openOpsPool(config.databaseUrl);
  try {
    const report = await doctor(pool, config.options);
    process.stdout.write(
      config.json ? `${escapeJsonControl(JSON.stringify(report, null, 2))}\n` : formatDoctor(report),
    );
    return levelRank(report.level);
  } catch (error) {
    const { message, exitCode } = describeFailure(error, config.databaseUrl);
    process.stderr.write(`prisma-outbox doctor: ${message}\n`);
    return exitCode;
  } finally {
    await pool.end().catch(() => {});
  }
}
