// The doctor's expectation of the schema (src/ops/doctor-schema.ts) against its sources: the models of prisma/*.prisma
// (columns with their PostgreSQL types and nullability, primary keys, unique and plain indexes) and the storage
// settings the migrations set by hand. A model or migration changed without the expectation fails here. Also the
// comparison itself, on catalog rows written by hand. Database-free.
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { compareSchema } from "../../src/ops/doctor-drift.js";
import { EXPECTED_TABLES, type ExpectedIndex } from "../../src/ops/doctor-schema.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

interface ParsedTable {
  columns: Record<string, { type: string; notNull: boolean }>;
  indexes: ExpectedIndex[];
}

/** Prisma's scalar and @db types as PostgreSQL's format_type() spells them (what the migrations create). */
function pgType(prismaType: string, db: string | undefined): string {
  if (db) {
    const m = /^(\w+)(?:\((\d+)\))?$/.exec(db)!;
    const [, name, arg] = m;
    const byName: Record<string, string> = {
      VarChar: `character varying(${arg})`,
      Timestamptz: `timestamp(${arg}) with time zone`,
      Uuid: "uuid",
      Json: "json",
      SmallInt: "smallint",
    };
    if (!byName[name!]) throw new Error(`@db.${db}: add it to the test's map`);
    return byName[name!]!;
  }
  const scalar: Record<string, string> = {
    String: "text",
    BigInt: "bigint",
    Int: "integer",
    Json: "jsonb",
    Bytes: "bytea",
    DateTime: "timestamp(3) without time zone",
    Boolean: "boolean",
  };
  if (!scalar[prismaType]) throw new Error(`${prismaType}: add it to the test's map`);
  return scalar[prismaType]!;
}

/** The models of one .prisma file, by table name (@@map). */
function parsePrisma(text: string): Map<string, ParsedTable> {
  const tables = new Map<string, ParsedTable>();
  for (const [, body] of text.matchAll(/^model \w+ \{\n([\s\S]*?)^\}/gm)) {
    const fieldToColumn = new Map<string, string>();
    const table: ParsedTable = { columns: {}, indexes: [] };
    let name = "";
    for (const raw of body!.split("\n")) {
      const line = raw.replace(/\/\/.*$/, "").trim();
      if (line === "") continue;
      const block = /^@@(\w+)\((.*)\)$/.exec(line);
      if (block) {
        const [, kind, args] = block;
        if (kind === "map") name = JSON.parse(args!);
        else {
          const fields = /^\[([^\]]*)\]/
            .exec(args!)![1]!
            .split(",")
            .map((f) => f.trim());
          const columns = fields.map((f) => fieldToColumn.get(f) ?? f);
          table.indexes.push({
            columns,
            unique: kind === "unique" || kind === "id",
            ...(kind === "id" ? { primary: true } : {}),
          });
        }
        continue;
      }
      const field = /^(\w+)\s+(\w+)(\??)(.*)$/.exec(line);
      if (!field) continue;
      const [, fieldName, type, optional, rest] = field;
      const column = /@map\("([^"]+)"\)/.exec(rest!)?.[1] ?? fieldName!;
      fieldToColumn.set(fieldName!, column);
      const db = /@db\.(\w+(?:\(\d+\))?)/.exec(rest!)?.[1];
      table.columns[column] = { type: pgType(type!, db), notNull: optional !== "?" };
      if (/@id\b/.test(rest!)) table.indexes.push({ columns: [column], unique: true, primary: true });
      if (/@unique\b/.test(rest!)) table.indexes.push({ columns: [column], unique: true });
    }
    tables.set(name, table);
  }
  return tables;
}

const prismaTables = new Map<string, ParsedTable>();
for (const file of ["outbox.prisma", "inbox.prisma", "request.prisma"]) {
  for (const [name, t] of parsePrisma(readFileSync(`${root}prisma/${file}`, "utf8"))) prismaTables.set(name, t);
}

/** `ALTER TABLE "t" SET (a = 1, b = 2)` of every migration, by table. */
function migrationStorage(): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  const dir = `${root}prisma/migrations`;
  for (const m of readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    const sql = readFileSync(`${dir}/${m.name}/migration.sql`, "utf8");
    for (const [, table, list] of sql.matchAll(/ALTER TABLE "(\w+)" SET \(([^)]*)\)/g)) {
      const settings = out.get(table!) ?? {};
      for (const item of list!.split(",")) {
        const [k, v] = item.split("=").map((s) => s.trim());
        settings[k!] = v!;
      }
      out.set(table!, settings);
    }
  }
  return out;
}

const sortIndexes = (xs: ExpectedIndex[]) =>
  xs
    .map((i) => ({ ...i, primary: i.primary ?? false }))
    .sort((a, b) => a.columns.join().localeCompare(b.columns.join()));

describe("the doctor's expected schema (src/ops/doctor-schema.ts)", () => {
  it("has exactly the tables of prisma/*.prisma", () => {
    expect(EXPECTED_TABLES.map((t) => t.name).sort()).toEqual([...prismaTables.keys()].sort());
  });

  for (const t of EXPECTED_TABLES) {
    it(`${t.name}: the columns, types, nullability and indexes of its model`, () => {
      const parsed = prismaTables.get(t.name)!;
      expect(t.columns).toEqual(parsed.columns);
      expect(sortIndexes(t.indexes)).toEqual(sortIndexes(parsed.indexes));
    });

    it(`${t.name}: the storage settings its migrations set`, () => {
      expect(t.storage).toEqual(migrationStorage().get(t.name) ?? {});
    });
  }
});

describe("compareSchema", () => {
  const outbox = EXPECTED_TABLES.find((t) => t.name === "outbox_dead_letter")!;
  const columns = Object.entries(outbox.columns).map(([column_name, c]) => ({
    table_name: outbox.name,
    column_name,
    type: c.type,
    not_null: c.notNull,
  }));
  const indexes = outbox.indexes.map((i, n) => ({
    table_name: outbox.name,
    index_name: `i${n}`,
    is_unique: i.unique,
    is_primary: i.primary ?? false,
    is_valid: true,
    is_partial: false,
    columns: i.columns,
  }));
  const present = new Map([[outbox.name, [] as string[]]]);

  it("finds nothing when the catalog matches", () => {
    expect(compareSchema([outbox], columns, indexes, present)).toEqual([]);
  });

  it("a unique index that is not unique, an invalid or partial index, a nullable column", () => {
    const changed = indexes.map((i) => (i.columns.join() === "message_id" ? { ...i, is_unique: false } : i));
    expect(compareSchema([outbox], columns, changed, present)).toEqual([
      { level: "error", table: outbox.name, problem: "unique index (message_id) missing" },
    ]);
    const invalid = indexes.map((i) => (i.columns.join() === "ordering_key,id" ? { ...i, is_valid: false } : i));
    expect(compareSchema([outbox], columns, invalid, present)).toEqual([
      { level: "warning", table: outbox.name, problem: "index (ordering_key, id) invalid (i2: a failed build)" },
    ]);
    const partial = indexes.map((i) => (i.columns.join() === "ordering_key,id" ? { ...i, is_partial: true } : i));
    expect(compareSchema([outbox], columns, partial, present)).toHaveLength(1);
    const nullable = columns.map((c) => (c.column_name === "exchange" ? { ...c, not_null: false } : c));
    expect(compareSchema([outbox], nullable, indexes, present)).toEqual([
      { level: "warning", table: outbox.name, problem: "column exchange is nullable, expected NOT NULL" },
    ]);
  });
});
