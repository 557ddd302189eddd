// Schema drift: the database against what the shipped migrations create (doctor-schema.ts, the one expectation).
// Missing tables, missing columns or a column of another type or nullability, missing or invalid indexes, and
// missing storage settings. What the database has beyond that (the app's own columns or indexes) is not drift.
// Levels: what makes a statement of ours fail (a table, a column, a unique index that ON CONFLICT needs) is an error;
// what makes it slow or leaves vacuum untuned (a plain index, a storage setting) is a warning.
import {
  SCHEMA_COLUMNS_SQL,
  SCHEMA_INDEXES_SQL,
  SCHEMA_TABLES_SQL,
  type SchemaColumnRow,
  type SchemaIndexRow,
} from "../sql/ops/doctor-schema.js";
import { type CheckContext, type Finding, type FindingLevel, rowsOf, worst } from "./doctor-finding.js";
import type { DoctorPart, ExpectedTable } from "./doctor-schema.js";

export interface Drift {
  level: FindingLevel;
  table: string;
  /** What is wrong, in words. */
  problem: string;
}

/** The drifts of `expected` tables, from the catalog's rows. Pure (unit-tested without a database). */
export function compareSchema(
  expected: readonly ExpectedTable[],
  columns: readonly SchemaColumnRow[],
  indexes: readonly SchemaIndexRow[],
  reloptions: ReadonlyMap<string, readonly string[]>,
): Drift[] {
  const drifts: Drift[] = [];
  for (const t of expected) {
    if (!reloptions.has(t.name)) {
      drifts.push({ level: "error", table: t.name, problem: "table missing" });
      continue;
    }
    const have = new Map(columns.filter((c) => c.table_name === t.name).map((c) => [c.column_name, c]));
    for (const [name, col] of Object.entries(t.columns)) {
      const c = have.get(name);
      if (!c) drifts.push({ level: "error", table: t.name, problem: `column ${name} missing` });
      else if (c.type !== col.type) {
        drifts.push({ level: "error", table: t.name, problem: `column ${name} is ${c.type}, expected ${col.type}` });
      } else if (c.not_null !== col.notNull) {
        drifts.push({
          level: col.notNull ? "warning" : "error",
          table: t.name,
          problem: `column ${name} is ${c.not_null ? "NOT NULL" : "nullable"}, expected ${col.notNull ? "NOT NULL" : "nullable"}`,
        });
      }
    }
    const tableIndexes = indexes.filter((i) => i.table_name === t.name && !i.is_partial);
    for (const want of t.indexes) {
      const same = tableIndexes.filter(
        (i) => i.columns.join(",") === want.columns.join(",") && (!want.unique || i.is_unique),
      );
      const what = `${want.primary ? "primary key" : want.unique ? "unique index" : "index"} (${want.columns.join(", ")})`;
      const level: FindingLevel = want.unique ? "error" : "warning";
      if (same.length === 0) drifts.push({ level, table: t.name, problem: `${what} missing` });
      else if (!same.some((i) => i.is_valid)) {
        drifts.push({ level, table: t.name, problem: `${what} invalid (${same[0]!.index_name}: a failed build)` });
      }
    }
    const options = new Map(
      (reloptions.get(t.name) ?? []).map((o) => {
        const at = o.indexOf("=");
        return [o.slice(0, at), o.slice(at + 1)] as const;
      }),
    );
    for (const [name, value] of Object.entries(t.storage)) {
      if (!options.has(name)) {
        drifts.push({ level: "warning", table: t.name, problem: `storage setting ${name}=${value} missing` });
      }
    }
  }
  return drifts;
}

const ACTION =
  "apply the shipped migrations (`prisma migrate deploy`; a multi-file schema must include prisma-outbox's " +
  "models, and its migration prisma_outbox_queue_tuning the storage settings); for an index dropped or invalid, " +
  "re-create it (CREATE INDEX CONCURRENTLY, as the migration names it)";

/** The schema-drift finding for the parts checked; `absent`: parts not installed (said, not an error). */
export async function schemaDrift(
  ctx: CheckContext,
  expected: readonly ExpectedTable[],
  absent: readonly DoctorPart[],
): Promise<Finding> {
  const names = expected.map((t) => t.name);
  const columns = await rowsOf<SchemaColumnRow>(ctx.db, SCHEMA_COLUMNS_SQL, [ctx.schema, names]);
  const indexes = await rowsOf<SchemaIndexRow>(ctx.db, SCHEMA_INDEXES_SQL, [ctx.schema, names]);
  const tables = await rowsOf<{ table_name: string; reloptions: string[] }>(ctx.db, SCHEMA_TABLES_SQL, [
    ctx.schema,
    names,
  ]);
  const drifts = compareSchema(expected, columns, indexes, new Map(tables.map((t) => [t.table_name, t.reloptions])));
  const note = absent.length > 0 ? ` (not installed: ${absent.join(", ")})` : "";
  return {
    check: "schema-drift",
    level: worst(drifts.map((d) => d.level)),
    summary:
      drifts.length > 0
        ? `${drifts.map((d) => `${d.table}: ${d.problem}`).join("; ")}${note}`
        : `the tables match the shipped migrations${note}`,
    cost:
      "a missing table, column or unique index makes the relay's or the inbox's statements fail; a missing index " +
      "makes every claim scan the table; missing storage settings leave a queue table to PostgreSQL's vacuum " +
      "defaults (a vacuum at 20% dead, which a queue rarely reaches at the right time)",
    action: drifts.length > 0 ? ACTION : "nothing",
    details: { drifts, checked: names, notInstalled: absent },
  };
}
