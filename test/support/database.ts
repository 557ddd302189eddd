// A database per test file, cloned from a template that already has the shipped migration and the app's tables.
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { openSchemaEngine } from "./schema-engine.js";
import { withDatabase } from "./servers.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
export const migrationsDir = `${root}prisma/migrations`;

async function admin<T>(adminUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates the template: the shipped migration applied the way `prisma migrate deploy` does, then the app tables. */
export async function createTemplateDatabase(adminUrl: string): Promise<string> {
  const name = `prisma_outbox_tpl_${process.pid}`;
  await admin(adminUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  });
  const url = withDatabase(adminUrl, name);
  const engine = await openSchemaEngine(url);
  try {
    await engine.applyMigrations(migrationsDir);
    const app = await readFile(`${root}test/prisma/schema/app.prisma`, "utf8");
    const sql = await engine.sqlFromEmpty({ "app.prisma": app });
    await admin(url, (c) => c.query(sql));
  } finally {
    await engine.close();
  }
  return name;
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await admin(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

/** A fresh database for one test file; returns its URL and a function that drops it. */
export async function createTestDatabase(adminUrl: string, template: string) {
  const name = `prisma_outbox_t_${randomBytes(5).toString("hex")}`;
  await admin(adminUrl, (c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
  return {
    name,
    url: withDatabase(adminUrl, name),
    drop: () => (process.env.KEEP_TEST_DATABASES ? Promise.resolve() : dropDatabase(adminUrl, name)),
  };
}

/**
 * Applies the shipped migrations, in order, inside `schema` (created here) of the database at `url`, as `prisma
 * migrate deploy` does for a URL with `?schema=`: the migrations' unqualified names resolve through search_path.
 */
export async function migrateIntoSchema(url: string, schema: string): Promise<void> {
  const folders = (await readdir(migrationsDir, { withFileTypes: true }))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const quoted = `"${schema.replaceAll('"', '""')}"`;
  await admin(url, async (c) => {
    await c.query("BEGIN");
    await c.query(`CREATE SCHEMA ${quoted}`);
    await c.query(`SET LOCAL search_path TO ${quoted}`);
    for (const folder of folders) await c.query(await readFile(`${migrationsDir}/${folder}/migration.sql`, "utf8"));
    await c.query("COMMIT");
  });
}
