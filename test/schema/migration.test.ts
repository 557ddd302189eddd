// The shipped migrations and the shipped Prisma model must describe the same tables. The wasm schema engine cannot
// introspect a live database through the pg adapter here ("Column type 'char' could not be deserialized"), so the
// check compares PostgreSQL's own catalog: a database migrated the way `prisma migrate deploy` does, against a
// database built from the SQL Prisma generates for the model plus the hand-written statements listed below.
import { readdir, readFile } from "node:fs/promises";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { migrationsDir } from "../support/database.js";
import { withoutOrdering } from "../support/models.js";
import { useTestDatabase } from "../support/prisma.js";
import { openSchemaEngine } from "../support/schema-engine.js";

const model = await readFile(new URL("../../prisma/outbox.prisma", import.meta.url), "utf8");
const migrationNames = (await readdir(migrationsDir, { withFileTypes: true }))
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();
/** The migrations of the outbox model (prisma/outbox.prisma); the inbox's and the requests' have tests of their own. */
const OUTBOX_MIGRATIONS = [
  "20261123000000_prisma_outbox",
  "20261124130000_prisma_outbox_queue_tuning",
  "20261124150000_prisma_outbox_ordering",
];
const migrations = await Promise.all(
  OUTBOX_MIGRATIONS.map((name) => readFile(`${migrationsDir}/${name}/migration.sql`, "utf8")),
);

/**
 * The statements of the shipped migrations that Prisma's schema language cannot express, so no model can make the
 * engine generate them: the outbox table's autovacuum settings (storage parameters; see the second migration for
 * why). Only `ALTER TABLE ... SET (autovacuum_...)` may be listed here: every other statement of every migration must
 * be SQL the engine generates from the model.
 */
const HAND_WRITTEN = [
  'ALTER TABLE "outbox_message" SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000, autovacuum_vacuum_cost_delay = 0);',
];

/**
 * The statements of a migration that alters tables Prisma created before: each `ADD COLUMN` must be a column line of
 * that table in the SQL Prisma generates from empty, and every other statement must be in that SQL as it is.
 */
function checkAlteringMigration(migration: string, engineSql: string): void {
  const statements = generatedPart(migration)
    .split(/;\s*\n/)
    .map((s) => s.trim().replace(/;$/, ""))
    .filter(Boolean);
  expect(statements.length).toBeGreaterThan(0);
  for (const statement of statements) {
    const add = /^ALTER TABLE "(\w+)" ADD COLUMN\s+(.+)$/.exec(statement);
    if (!add) {
      expect(engineSql).toContain(`${statement};`);
      continue;
    }
    const table = new RegExp(`CREATE TABLE "${add[1]}" \\(([^;]*)\\);`).exec(engineSql);
    expect(table, `CREATE TABLE "${add[1]}" in the SQL of the model`).not.toBeNull();
    expect(table![1]).toContain(`    ${add[2]},`);
  }
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * Columns (type, nullability, default), indexes, constraints and table storage parameters of the outbox tables of the
 * public schema, as comparable text (outbox_request is prisma/request.prisma's, checked in request-migration.test.ts).
 */
function catalog(url: string): Promise<string[]> {
  return withClient(url, async (c) => {
    const columns = await c.query(`
      SELECT table_name || '.' || column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '')
             || coalesce(' p' || datetime_precision, '') || ' ' || is_nullable || ' ' || coalesce(column_default, '-') AS d
      FROM information_schema.columns WHERE table_schema = 'public' AND table_name LIKE 'outbox%' AND table_name <> 'outbox_request'`);
    const indexes = await c.query(
      "SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'public' AND tablename LIKE 'outbox%' AND tablename <> 'outbox_request'",
    );
    const constraints = await c.query(`
      SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) AS d
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text LIKE 'outbox%'
        AND conrelid::regclass::text <> 'outbox_request'`);
    const storage = await c.query(`
      SELECT relname || ' reloptions ' || coalesce(array_to_string(reloptions, ','), '-') AS d
      FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname LIKE 'outbox%' AND relname NOT LIKE 'outbox_request%'`);
    return [...columns.rows, ...indexes.rows, ...constraints.rows, ...storage.rows].map((r) => r.d as string).sort();
  });
}

const reset = (url: string) => withClient(url, (c) => c.query("DROP SCHEMA public CASCADE; CREATE SCHEMA public"));

/** A migration without its hand-written statements and its comment lines. */
function generatedPart(migration: string): string {
  let rest = migration;
  for (const statement of HAND_WRITTEN) rest = rest.replace(statement, "");
  return rest
    .split("\n")
    .filter((line) => !/^\s*--/.test(line))
    .join("\n")
    .trim();
}

describe("shipped model and migrations", async () => {
  const migrated = await useTestDatabase();
  const generated = await useTestDatabase();
  const engine = await openSchemaEngine(migrated);
  afterAll(() => engine.close());

  it("the first migration is the SQL Prisma generates for the model", async () => {
    expect(migrationNames[0]).toBe(OUTBOX_MIGRATIONS[0]);
    expect(migrationNames).toEqual(expect.arrayContaining(OUTBOX_MIGRATIONS));
    const before = withoutOrdering(model);
    expect(before).not.toContain("ordering_key");
    expect((await engine.sqlFromEmpty({ "outbox.prisma": before })).trim()).toContain(migrations[0]!.trim());
  });

  it("every other statement of the migrations is generated by Prisma or one of the listed storage settings", async () => {
    for (const statement of HAND_WRITTEN) {
      expect(statement).toMatch(/^ALTER TABLE "outbox_\w+" SET \((autovacuum_\w+ = [\d.]+(, )?)+\);$/);
      expect(migrations.filter((m) => m.includes(statement))).toHaveLength(1);
    }
    const engineSqlBefore = generatedPart(await engine.sqlFromEmpty({ "outbox.prisma": withoutOrdering(model) }));
    for (const migration of migrations.slice(0, 2)) expect(engineSqlBefore).toContain(generatedPart(migration));
    // The ordering migration adds columns and indexes to the outbox and inbox tables.
    const inboxModel = await readFile(new URL("../../prisma/inbox.prisma", import.meta.url), "utf8");
    const bothSql = await engine.sqlFromEmpty({ "outbox.prisma": model, "inbox.prisma": inboxModel });
    checkAlteringMigration(migrations[2]!, bothSql);
    expect(() =>
      checkAlteringMigration(`${migrations[2]}\nCREATE INDEX "x" ON "outbox_message"("id");`, bothSql),
    ).toThrow();
    // The check can fail: a statement that is neither is left over.
    expect(engineSqlBefore).not.toContain(
      generatedPart(`${migrations[1]}\nCREATE INDEX "x" ON "outbox_message"("id");`),
    );
  });

  it("a database migrated with the shipped migrations matches the model and the listed statements", async () => {
    await reset(migrated);
    expect(await engine.applyMigrations(migrationsDir)).toEqual(migrationNames);
    expect(migrationNames).toEqual([
      "20261123000000_prisma_outbox",
      "20261124120000_prisma_outbox_inbox",
      "20261124130000_prisma_outbox_queue_tuning",
      "20261124140000_prisma_outbox_request_status",
      "20261124150000_prisma_outbox_ordering",
    ]);
    const fromModel = await engine.sqlFromEmpty({ "outbox.prisma": model });
    await reset(generated);
    await withClient(generated, async (c) => c.query(`${fromModel}\n${HAND_WRITTEN.join("\n")}`));
    const expected = await catalog(generated);
    expect(expected.length).toBeGreaterThan(25);
    expect(expected).toContain(
      "outbox_message reloptions autovacuum_vacuum_scale_factor=0,autovacuum_vacuum_threshold=1000," +
        "autovacuum_analyze_scale_factor=0,autovacuum_analyze_threshold=1000,autovacuum_vacuum_cost_delay=0",
    );
    expect(await catalog(migrated)).toEqual(expected);

    // The comparison can fail: a model that lost a column gives another catalog, and so do missing storage settings.
    const changed = model.replace(/^\s*lastError\s+String\?\s+@map\("last_error"\)\n/m, "");
    expect(changed).not.toBe(model);
    await reset(generated);
    await withClient(generated, async (c) =>
      c.query(`${await engine.sqlFromEmpty({ "outbox.prisma": changed })}\n${HAND_WRITTEN.join("\n")}`),
    );
    expect(await catalog(generated)).not.toEqual(expected);
    await reset(generated);
    await withClient(generated, async (c) => c.query(fromModel));
    expect(await catalog(generated)).not.toEqual(expected);
  });
});
