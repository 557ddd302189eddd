#!/usr/bin/env bash
# Runs the write side's tests (type tests included) on another Prisma 7 release, in a scratch copy of the project:
#   scripts/prisma-matrix.sh [lowest|newest|7.x.y]   (versions resolved from the registry now: prisma-release.mjs)
# CI runs it for the lowest supported release and the newest 7.x, so a Prisma release whose internals moved turns CI
# red with the extension's own OutboxConfigError, not a user's app.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
read -r client cli adapter < <(node "$root/scripts/prisma-release.mjs" "${1:-newest}")
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "prisma matrix: @prisma/client@$client prisma@$cli @prisma/adapter-pg@$adapter"
(cd "$root" && tar --exclude=./node_modules --exclude=./.git --exclude=./dist --exclude=./test/generated \
  --exclude=./examples/generated --exclude=./scratch -cf - .) | tar -xf - -C "$work"
cd "$work"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
npm install --no-save --no-audit --no-fund --loglevel=error "@prisma/client@$client" "prisma@$cli" \
  "@prisma/adapter-pg@$adapter" >/dev/null
node -e 'for (const p of ["@prisma/client","prisma","@prisma/adapter-pg"]) console.log(`  installed ${p}@${JSON.parse(require("fs").readFileSync(`node_modules/${p}/package.json`)).version}`)'
npm run --silent generate
npm run --silent typecheck
npx vitest run test/extension test/schema unit.test --exclude "test/docs/**"  # the docs link test reads git, absent from this copy
