// The shipped inbox model (prisma/inbox.prisma) and its migration describe the same table, as for the outbox
// (migration.test.ts says why the check compares PostgreSQL's catalog).
import { readFile } from "node:fs/promises";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { catalog as readCatalog } from "../support/catalog.js";
import { migrationsDir } from "../support/database.js";
import { withoutOrdering } from "../support/models.js";
import { useTestDatabase } from "../support/prisma.js";
import { openSchemaEngine } from "../support/schema-engine.js";

const model = await readFile(new URL("../../prisma/inbox.prisma", import.meta.url), "utf8");
const migration = await readFile(`${migrationsDir}/20261124120000_prisma_outbox_inbox/migration.sql`, "utf8");

const catalog = (url: string) => readCatalog(url, (name) => `${name} LIKE 'inbox%'`);

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
