// The shipped request status model (prisma/request.prisma) and its migration describe the same table, as for the outbox
// (migration.test.ts says why the check compares PostgreSQL's catalog).
import { readFile } from "node:fs/promises";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { catalog as readCatalog } from "../support/catalog.js";
import { migrationsDir } from "../support/database.js";
import { useTestDatabase } from "../support/prisma.js";
import { openSchemaEngine } from "../support/schema-engine.js";

const model = await readFile(new URL("../../prisma/request.prisma", import.meta.url), "utf8");
const migration = await readFile(`${migrationsDir}/20261124140000_prisma_outbox_request_status/migration.sql`, "utf8");

const catalog = (url: string) => readCatalog(url, (name) => `${name} LIKE 'outbox_request%'`);

describe("shipped request status model and migration", async () => {
  // The test database is a clone of the template, which the shipped migrations built the way `migrate deploy` does.
  const migrated = await useTestDatabase();
  const generated = await useTestDatabase();
  const engine = await openSchemaEngine(generated);
  afterAll(() => engine.close());

  it("the migration is the SQL Prisma generates for the model", async () => {
    expect((await engine.sqlFromEmpty({ "request.prisma": model })).trim()).toContain(migration.trim());
  });

  it("a database migrated with the shipped migrations has the model's request table, column for column", async () => {
    const c = new pg.Client({ connectionString: generated });
    await c.connect();
    await c.query("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    await c.query(await engine.sqlFromEmpty({ "request.prisma": model }));
    await c.end();
    const expected = await catalog(generated);
    expect(expected.length).toBeGreaterThan(15);
    expect(await catalog(migrated)).toEqual(expected);
  });
});
