// The shipped inbox model (prisma/inbox.prisma) and its migration describe the same table, as for the outbox
// (migration.test.ts says why the check compares PostgreSQL's catalog).
import { readFile } from "node:fs/promises";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { migrationsDir } from "../support/database.js";
import { withoutOrdering } from "../support/models.js";
import { useTestDatabase } from "../support/prisma.js";
import { openSchemaEngine } from "../support/schema-engine.js";

const model = await readFile(new URL("../../prisma/inbox.prisma", import.meta.url), "utf8");
const migration = await readFile(`${migrationsDir}/20261124120000_prisma_outbox_inbox/migration.sql`, "utf8");

async function catalog(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const columns = await c.query(`
      SELECT table_name || '.' || column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '')
             || coalesce(' p' || datetime_precision, '') || ' ' || is_nullable || ' ' || coalesce(column_default, '-') AS d
      FROM information_schema.columns WHERE table_schema = 'public' AND table_name LIKE 'inbox%'`);
    const indexes = await c.query(
      "SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'public' AND tablename LIKE 'inbox%'",
    );
    const constraints = await c.query(`
      SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) AS d
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text LIKE 'inbox%'`);
    return [...columns.rows, ...indexes.rows, ...constraints.rows].map((r) => r.d as string).sort();
  } finally {
    await c.end();
  }
}

describe("shipped inbox model and migration", async () => {
  // The test database is a clone of the template, which the shipped migrations built the way `migrate deploy` does.
  const migrated = await useTestDatabase();
  const generated = await useTestDatabase();
  const engine = await openSchemaEngine(generated);
  afterAll(() => engine.close());

  it("the migration is the SQL Prisma generates for the model", async () => {
    // As the model was before the ordering migration (20261124150000) added the `key` field; migration.test.ts checks
    // that migration's statements.
    const before = withoutOrdering(model);
    expect(before).not.toContain("ordering_key");
    expect((await engine.sqlFromEmpty({ "inbox.prisma": before })).trim()).toContain(migration.trim());
  });

  it("a database migrated with the shipped migrations has the model's inbox table, column for column", async () => {
    const c = new pg.Client({ connectionString: generated });
    await c.connect();
    await c.query("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    await c.query(await engine.sqlFromEmpty({ "inbox.prisma": model }));
    await c.end();
    const expected = await catalog(generated);
    expect(expected.length).toBeGreaterThan(20);
    expect(await catalog(migrated)).toEqual(expected);
  });
});
