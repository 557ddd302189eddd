// The fresh apps' database (scripts/fresh-app.sh, scripts/fresh-app-testing.sh), run from the app's folder: creates
// it, applies the packed package's shipped migrations in order (as `prisma migrate deploy` would), then the app's own
// tables; prints the database's URL.
//   node create-database.mjs <admin-url> <database> [<app table DDL>...]
import { readdirSync, readFileSync } from "node:fs";
import pg from "pg";

const [adminUrl, db, ...appTables] = process.argv.slice(2);
const url = new URL(adminUrl);
url.pathname = `/${db}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${db}`);
await admin.end();
const client = new pg.Client({ connectionString: url.href });
await client.connect();
const dir = "node_modules/prisma-outbox/prisma/migrations";
const migrations = readdirSync(dir).filter((d) => !d.endsWith(".toml"));
for (const m of migrations.sort()) await client.query(readFileSync(`${dir}/${m}/migration.sql`, "utf8"));
for (const ddl of appTables) await client.query(ddl);
await client.end();
console.log(url.href);
