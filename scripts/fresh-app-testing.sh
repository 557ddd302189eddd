#!/usr/bin/env bash
# A fresh app tests itself with `prisma-outbox/testing`, as a user's suite would: the packed package installed from
# its tarball beside Prisma 7, pg, vitest, jest and typescript (exact versions below, from the npm registry), the
# shipped outbox and inbox models beside the app's (scripts/fresh-app/testing/), then
#   1. a vitest suite (TypeScript) and 2. a jest suite (native ESM, .mjs) over the same app code: a write through the
#      app's outbox() client awaited with expectPublished, the inbox handler run (processed, the duplicate dropped), a
#      rollback that publishes nothing, a retry made due by advancing the TestClock;
#   3. `tsc --noEmit` on a file using the subpath's types, with moduleResolution node16 and bundler;
# and, before them, that the package and the subpath load no amqplib.
# No RabbitMQ: the kit's in-memory broker replaces it, and AMQP_URL points at a closed port to prove nothing dials it.
#   scripts/fresh-app-testing.sh [node major]   (default: the node on PATH; else that line, scripts/node-line.sh)
# Needs the build (`npm run build`: the tarball packs dist/) and DATABASE_URL (an admin URL where CREATE DATABASE may
# run), else the local PostgreSQL. About 40 s, most of it the install.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "${1:-}" ]; then
  # shellcheck source=node-line.sh
  . "$root/scripts/node-line.sh"
  use_node_line "$1"
fi
# Pinned: this step proves the kit against known releases; scripts/fresh-app.sh follows Prisma's newest.
deps=(
  "@prisma/client@7.10.0" "prisma@7.10.1" "@prisma/adapter-pg@7.10.1" "pg@8.23.1"
  "vitest@5.1.2" "jest@30.5.2" "typescript@7.0.2" "@types/node@24.19.4"
)
if [ ! -f "$root/dist/testing/index.js" ]; then
  echo "fresh app testing: dist/testing/index.js is missing: run npm run build first" >&2
  exit 1
fi
admin_url="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
app="$(mktemp -d)"
db="fresh_app_testing_$$"
cleanup() {
  node -e 'const pg=require(process.argv[1]);const c=new pg.Client({connectionString:process.argv[2]});c.connect().then(()=>c.query(`DROP DATABASE IF EXISTS ${process.argv[3]} WITH (FORCE)`)).finally(()=>c.end())' \
    "$root/node_modules/pg" "$admin_url" "$db" || true
  rm -rf "$app"
}
trap cleanup EXIT
started=$SECONDS
took() { echo "fresh app testing: $1 ($((SECONDS - started)) s)"; }

echo "fresh app testing on Node $(node --version): ${deps[*]} + the packed prisma-outbox"
(cd "$root" && npm pack --silent --pack-destination "$app" >/dev/null)
cp -r "$root/scripts/fresh-app/testing/." "$app/"
cd "$app"
printf '{ "name": "fresh-app-testing", "private": true, "type": "module" }\n' > package.json
npm install --engine-strict --no-audit --no-fund --loglevel=error ./prisma-outbox-*.tgz "${deps[@]}" >/dev/null
took "installed"

# The shipped outbox and inbox models beside the app's, as the README says; generate (the engine check only wants a file).
mkdir -p schema && mv schema.prisma schema/
cp node_modules/prisma-outbox/prisma/outbox.prisma node_modules/prisma-outbox/prisma/inbox.prisma schema/
PRISMA_SCHEMA_ENGINE_BINARY="$(command -v node)" npx prisma generate --schema schema >/dev/null

# The database: the shipped migrations, and the app's tables.
db_url="$(node "$root/scripts/fresh-app/create-database.mjs" "$admin_url" "$db" \
  'CREATE TABLE "Order" (id SERIAL PRIMARY KEY, number TEXT NOT NULL UNIQUE, amount INTEGER NOT NULL)' \
  'CREATE TABLE "Invoice" (id SERIAL PRIMARY KEY, "orderId" INTEGER NOT NULL UNIQUE, "messageId" TEXT NOT NULL)')"
took "generated, database migrated"

# The packed dist: the package and its subpath load no amqplib (a resolve hook sees every import and require); the
# probe is shown to see amqplib when it is loaded, so it cannot pass by seeing nothing.
node --input-type=module -e '
import { registerHooks } from "node:module";
const seen = [];
registerHooks({ resolve(specifier, context, next) {
  const r = next(specifier, context); if (r.url.includes("/node_modules/amqplib/")) seen.push(r.url); return r; } });
const kit = await import("prisma-outbox/testing"); await import("prisma-outbox");
if (typeof kit.startOutboxHarness !== "function") throw new Error("prisma-outbox/testing exports no startOutboxHarness");
if (seen.length > 0) throw new Error(`prisma-outbox/testing loaded amqplib: ${seen[0]}`);
await import("amqplib");
if (seen.length === 0) throw new Error("the probe did not see amqplib loaded");
console.log("fresh app testing: prisma-outbox and prisma-outbox/testing load without amqplib");'

export DATABASE_URL="$db_url" AMQP_URL="amqp://guest:guest@127.0.0.1:1"
npx vitest run test/shop.test.ts
took "vitest passed"
node --experimental-vm-modules --disable-warning=ExperimentalWarning node_modules/jest/bin/jest.js --ci
took "jest passed"
for resolution in node16 bundler; do
  npx tsc -p "tsconfig.$resolution.json"
  echo "fresh app testing: the subpath's types check with moduleResolution $resolution"
done
took "done"
