// The shipped migration and the shipped Prisma model must describe the same tables. The wasm schema engine cannot
// introspect a live database through the pg adapter here ("Column type 'char' could not be deserialized"), so the
// check compares PostgreSQL's own catalog: a database migrated the way `prisma migrate deploy` does, against a
// database built from the SQL Prisma generates for the model.
import { readFile } from "node:fs/promises";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { migrationsDir } from "../support/database.js";
import { useTestDatabase } from "../support/prisma.js";
import { openSchemaEngine } from "../support/schema-engine.js";

const model = await readFile(new URL("../../prisma/outbox.prisma", import.meta.url), "utf8");
const migration = await readFile(`${migrationsDir}/20261123000000_prisma_outbox/migration.sql`, "utf8");

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Columns (type, nullability, default), indexes and constraints of the public schema, as comparable text. */
function catalog(url: string): Promise<string[]> {
  return withClient(url, async (c) => {
    const columns = await c.query(`
      SELECT table_name || '.' || column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '')
             || coalesce(' p' || datetime_precision, '') || ' ' || is_nullable || ' ' || coalesce(column_default, '-') AS d
      FROM information_schema.columns WHERE table_schema = 'public' AND table_name LIKE 'outbox%'`);
    const indexes = await c.query(
      "SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'public' AND tablename LIKE 'outbox%'",
    );
    const constraints = await c.query(`
      SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) AS d
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text LIKE 'outbox%'`);
    return [...columns.rows, ...indexes.rows, ...constraints.rows].map((r) => r.d as string).sort();
  });
}

const reset = (url: string) => withClient(url, (c) => c.query("DROP SCHEMA public CASCADE; CREATE SCHEMA public"));

describe("shipped model and migration", async () => {
  const migrated = await useTestDatabase();
  const generated = await useTestDatabase();
  const engine = await openSchemaEngine(migrated);
  afterAll(() => engine.close());

  it("the migration is the SQL Prisma generates for the model", async () => {
    expect((await engine.sqlFromEmpty({ "outbox.prisma": model })).trim()).toContain(migration.trim());
  });

  it("a database migrated with the shipped migration matches the model, column for column", async () => {
    await reset(migrated);
    expect(await engine.applyMigrations(migrationsDir)).toEqual([
      "20261123000000_prisma_outbox",
      "20261124120000_prisma_outbox_inbox",
    ]);
    await reset(generated);
    await withClient(generated, async (c) => c.query(await engine.sqlFromEmpty({ "outbox.prisma": model })));
    const expected = await catalog(generated);
    expect(expected.length).toBeGreaterThan(25);
    expect(await catalog(migrated)).toEqual(expected);

    // The comparison can fail: a model that lost a column gives another catalog.
    const changed = model.replace(/^\s*lastError\s+String\?\s+@map\("last_error"\)\n/m, "");
    expect(changed).not.toBe(model);
    await reset(generated);
    await withClient(generated, async (c) => c.query(await engine.sqlFromEmpty({ "outbox.prisma": changed })));
    expect(await catalog(generated)).not.toEqual(expected);
  });
});
