// Prints the SQL that creates the shipped outbox models from an empty database, i.e. the shipped migration.
// Usage: npx tsx scripts/migration-sql.ts > prisma/migrations/<name>/migration.sql
import { readFile } from "node:fs/promises";
import { openSchemaEngine } from "../test/support/schema-engine.js";

const url = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const engine = await openSchemaEngine(url);
try {
  process.stdout.write(await engine.sqlFromEmpty({ "outbox.prisma": await readFile("prisma/outbox.prisma", "utf8") }));
} finally {
  await engine.close();
}
