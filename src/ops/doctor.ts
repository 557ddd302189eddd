// `doctor()`: what is wrong with the database under the outbox and the inbox, before users notice: the xmin horizon,
// autovacuum, bloat, schema drift, backlogs, dead letters and who is connected; each finding with what it costs and
// what to do (docs/operating.md#doctor). Read-only: catalogs, statistics views and SELECTs that take no row locks. A
// missing table is a finding, not a throw; a check the role may not run (42501) is a warning that says so. A
// database that does not answer throws (the CLI turns it into exit code 1 or 2).
//
// `checks: "cheap"` runs what reads catalogs, statistics views and bounded index ranges only (every check but
// dead-letters, and the backlogs in their capped form): what the relay and the inbox run every doctorIntervalMs.
import type pg from "pg";
import { SCHEMA_TABLES_SQL } from "../sql/ops/doctor-schema.js";
import { bloat, vacuumChecks, xminHorizon } from "./doctor-checks.js";
import { schemaDrift } from "./doctor-drift.js";
import { type CheckContext, type DoctorReport, type Finding, type Queryable, rowsOf, worst } from "./doctor-finding.js";
import { type DoctorOptions, resolveDoctorOptions } from "./doctor-options.js";
import { backlogCheck, deadLetters, workersConnected } from "./doctor-queues.js";
import { DOCTOR_PARTS, type DoctorPart, EXPECTED_TABLES, expectedTables } from "./doctor-schema.js";

export type { DoctorReport, Finding, FindingLevel } from "./doctor-finding.js";
export type { DoctorOptions } from "./doctor-options.js";
export type { DoctorPart } from "./doctor-schema.js";

const INSUFFICIENT_PRIVILEGE = "42501";

/** A check the role may not run is a finding that says so; anything else (the database gone) is thrown. */
async function guarded(check: string, run: () => Promise<Finding | Finding[]>): Promise<Finding[]> {
  try {
    const r = await run();
    return Array.isArray(r) ? r : [r];
  } catch (error) {
    if ((error as { code?: string }).code !== INSUFFICIENT_PRIVILEGE) throw error;
    return [
      {
        check,
        level: "warning",
        summary: `could not check: ${(error as Error).message}`,
        cost: "this check is blind",
        action: "GRANT pg_monitor (or pg_read_all_stats) to the role the doctor connects as",
        details: {},
      },
    ];
  }
}

/** Runs the checks on the app's database; read-only. `pool`: a pg.Pool or a connected pg.Client. */
export async function doctor(pool: pg.Pool | pg.ClientBase, options: DoctorOptions = {}): Promise<DoctorReport> {
  const o = resolveDoctorOptions(options);
  const db: Queryable = pool;
  const existing = await rowsOf<{ table_name: string }>(db, SCHEMA_TABLES_SQL, [
    o.schema,
    EXPECTED_TABLES.map((t) => t.name),
  ]);
  const present = new Set(existing.map((r) => r.table_name));
  const installed = DOCTOR_PARTS.filter((p) => expectedTables([p]).some((t) => present.has(t.name)));
  const parts: DoctorPart[] = o.parts ?? installed;
  const absent = o.parts ? [] : DOCTOR_PARTS.filter((p) => !installed.includes(p));
  const ctx: CheckContext = { db, schema: o.schema, cheap: o.checks === "cheap", present };
  const findings: Finding[] = [];
  findings.push(...(await guarded("xmin-horizon", () => xminHorizon(ctx, o))));
  if (present.size > 0) {
    findings.push(...(await guarded("autovacuum-disabled", () => vacuumChecks(ctx, o))));
    findings.push(...(await guarded("bloat", () => bloat(ctx, o))));
  }
  findings.push(...(await guarded("schema-drift", () => schemaDrift(ctx, expectedTables(parts), absent))));
  const backlogs: { outbox?: Finding; inbox?: Finding } = {};
  if (present.has("outbox_message") && parts.includes("outbox")) {
    backlogs.outbox = (await guarded("outbox-backlog", () => backlogCheck(ctx, o, "outbox")))[0]!;
  }
  if (present.has("inbox_message") && parts.includes("inbox")) {
    backlogs.inbox = (await guarded("inbox-backlog", () => backlogCheck(ctx, o, "inbox")))[0]!;
  }
  findings.push(...Object.values(backlogs));
  if (!ctx.cheap && (present.has("outbox_dead_letter") || present.has("inbox_message"))) {
    findings.push(...(await guarded("dead-letters", () => deadLetters(ctx, o))));
  }
  findings.push(...(await guarded("workers-connected", () => workersConnected(ctx, backlogs))));
  const kept = findings.filter((f) => !(o.skip as string[]).includes(f.check));
  return { level: worst(kept.map((f) => f.level)), findings: kept, checkedAt: new Date(), schema: o.schema };
}
