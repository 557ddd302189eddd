#!/usr/bin/env bash
# A fresh app installs the packed package beside a Prisma 7 release with a plain `npm install` (no
# --legacy-peer-deps), and its first declared event, on a model with BigInt, Decimal and Bytes columns, publishes the
# documented JSON through the relay and RabbitMQ.
#   scripts/fresh-app.sh [newest|lowest|7.x.y] [node major]
#   (default newest: the newest 7.x on the registry now; the node on PATH, else that Node.js line: scripts/node-line.sh)
# The install is --engine-strict: a dependency whose `engines` excludes the Node line fails it, as it fails users
# who set engine-strict, instead of a warning nobody reads.
# Needs DATABASE_URL (an admin URL where CREATE DATABASE may run) and AMQP_URL, else the local servers.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "${2:-}" ]; then
  # shellcheck source=node-line.sh
  . "$root/scripts/node-line.sh"
  use_node_line "$2"
fi
read -r client cli adapter < <(node "$root/scripts/prisma-release.mjs" "${1:-newest}")
admin_url="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
amqp_url="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672}"
app="$(mktemp -d)"
db="fresh_app_$$"
cleanup() {
  node -e 'const pg=require(process.argv[1]);const c=new pg.Client({connectionString:process.argv[2]});c.connect().then(()=>c.query(`DROP DATABASE IF EXISTS ${process.argv[3]} WITH (FORCE)`)).finally(()=>c.end())' \
    "$root/node_modules/pg" "$admin_url" "$db" || true
  rm -rf "$app"
}
trap cleanup EXIT

echo "fresh app on Node $(node --version): @prisma/client@$client prisma@$cli @prisma/adapter-pg@$adapter + the packed prisma-outbox"
(cd "$root" && npm pack --silent --pack-destination "$app" >/dev/null)
cp "$root/scripts/fresh-app/schema.prisma" "$root/scripts/fresh-app/app.ts" "$app/"
cd "$app"
printf '{ "name": "fresh-app", "private": true, "type": "module" }\n' > package.json
npm install --engine-strict --no-audit --no-fund --loglevel=error ./prisma-outbox-*.tgz "@prisma/client@$client" "prisma@$cli" \
  "@prisma/adapter-pg@$adapter" pg amqplib >/dev/null
node -e 'const p=require("./node_modules/prisma-outbox/package.json");console.log("fresh app: peerDependencies",JSON.stringify(p.peerDependencies))'

# The shipped outbox model beside the app's, as the README says; generate (the engine check only wants a file).
mkdir -p schema && cp schema.prisma schema/ && cp node_modules/prisma-outbox/prisma/outbox.prisma schema/
sed -i 's#output   = "./generated"#output   = "../generated"#' schema/schema.prisma
PRISMA_SCHEMA_ENGINE_BINARY="$(command -v node)" npx prisma generate --schema schema >/dev/null

# The database: the shipped migration, and the app's table.
db_url="$(node "$root/scripts/fresh-app/create-database.mjs" "$admin_url" "$db" \
  'CREATE TABLE "Invoice" (id BIGSERIAL PRIMARY KEY, total DECIMAL(12,2) NOT NULL, scan BYTEA NOT NULL, issued TIMESTAMP(3) NOT NULL)')"

DATABASE_URL="$db_url" AMQP_URL="$amqp_url" "$root/node_modules/.bin/tsx" app.ts
