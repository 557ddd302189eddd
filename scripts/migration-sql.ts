// Prints the SQL that creates the given Prisma model files from an empty database, as `prisma migrate dev` would
// write it, with the schema engine compiled to WebAssembly (the native one cannot be downloaded everywhere).
// Usage: npx tsx scripts/migration-sql.ts [model files, default prisma/outbox.prisma] > <migration>/migration.sql
//   e.g. npx tsx scripts/migration-sql.ts prisma/inbox.prisma
//        npx tsx scripts/migration-sql.ts examples/prisma/schema/billing.prisma
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { openSchemaEngine } from "../test/support/schema-engine.js";

const files = process.argv.length > 2 ? process.argv.slice(2) : ["prisma/outbox.prisma"];
const url = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const engine = await openSchemaEngine(url);
try {
  const models = Object.fromEntries(
    await Promise.all(files.map(async (f) => [basename(f), await readFile(f, "utf8")])),
  );
  const sql = await engine.sqlFromEmpty(models);
  // From "empty" the engine also creates the schema; `migrate dev` leaves that out, the public schema being there.
  process.stdout.write(`${sql.replace(/^-- CreateSchema\nCREATE SCHEMA IF NOT EXISTS "public";\n\n/, "").trimEnd()}\n`);
} finally {
  await engine.close();
}
