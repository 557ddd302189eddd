// The example's migrations (examples/prisma/migrations) and its schema (examples/prisma/schema) must describe the
// same tables, or `npm run example` runs against another database than its Prisma client expects. The shipped
// migrations must be in it unchanged (as a user copies them), and the example's own (Order, Invoice) must be the SQL
// Prisma generates for its models. Compared through PostgreSQL's catalog, as test/schema/migration.test.ts does.
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { catalog as readCatalog, resetPublicSchema, withClient } from "../support/catalog.js";
import { migrationsDir } from "../support/database.js";
import { useTestDatabase } from "../support/prisma.js";
import { openSchemaEngine } from "../support/schema-engine.js";

const examples = fileURLToPath(new URL("../../examples/prisma/", import.meta.url));
const exampleMigrations = `${examples}migrations`;

const catalog = (url: string) => readCatalog(url, (name) => `${name} <> '_prisma_migrations'`);

const reset = resetPublicSchema;

const directories = async (dir: string) =>
  (await readdir(dir, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();

/**
 * The example's schema files (the shipped models are copied in by `npm run generate`). The engine brings its own
 * datasource block, so the example's own is left out, with the generator block.
 */
async function exampleModels(): Promise<Record<string, string>> {
  const dir = `${examples}schema`;
  const names = (await readdir(dir)).filter((f) => f.endsWith(".prisma")).sort();
  const models: Record<string, string> = {};
  for (const name of names) {
    models[name] = (await readFile(`${dir}/${name}`, "utf8")).replace(/^(datasource|generator) \w+ \{[^}]*\}\n/gm, "");
  }
  return models;
}

describe("the example's migrations", async () => {
  const migrated = await useTestDatabase();
  const generated = await useTestDatabase();
  const engine = await openSchemaEngine(migrated);
  afterAll(() => engine.close());

  it("carry every shipped migration unchanged", async () => {
    for (const name of await directories(migrationsDir)) {
      const shipped = await readFile(`${migrationsDir}/${name}/migration.sql`, "utf8");
      const copy = await readFile(`${exampleMigrations}/${name}/migration.sql`, "utf8").catch(() => "(missing)");
      expect(copy, `examples/prisma/migrations/${name} must be a copy of prisma/migrations/${name}`).toBe(shipped);
    }
  });

  it("build the tables of the example's schema, column for column", async () => {
    const models = await exampleModels();
    expect(Object.keys(models)).toEqual([
      "billing.prisma",
      "inbox.prisma",
      "outbox.prisma",
      "request.prisma",
      "schema.prisma",
    ]);
    await reset(migrated);
    expect(await engine.applyMigrations(exampleMigrations)).toEqual(await directories(exampleMigrations));
    await reset(generated);
    await withClient(generated, async (c) => c.query(await engine.sqlFromEmpty(models)));
    const expected = await catalog(generated);
    expect(expected).toContain("Invoice.messageId uuid NO -");
    expect(await catalog(migrated)).toEqual(expected);

    // The comparison can fail: a model with a column its migration lacks gives another catalog.
    const billing = models["billing.prisma"]!;
    const changed = billing.replace(/^(\s*amount\s+Int)$/m, '$1\n  currency String @default("EUR")');
    expect(changed).not.toBe(billing);
    await reset(generated);
    await withClient(generated, async (c) =>
      c.query(await engine.sqlFromEmpty({ ...models, "billing.prisma": changed })),
    );
    expect(await catalog(generated)).not.toEqual(expected);
  });
});
