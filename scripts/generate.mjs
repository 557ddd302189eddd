// Generates the Prisma clients of the tests, benchmarks, example and docs' code blocks, after copying the shipped
// models (outbox, inbox, request) into their schema folders the way a user would. `prisma generate` never runs the
// schema engine, but the CLI insists the engine binary exists; where it cannot be downloaded, any existing file
// satisfies the check.
import { spawnSync } from "node:child_process";
import { copyFileSync } from "node:fs";

for (const dir of ["test/prisma/schema", "examples/prisma/schema", "test/docs/prisma/schema"]) {
  copyFileSync("prisma/outbox.prisma", `${dir}/outbox.prisma`);
  copyFileSync("prisma/inbox.prisma", `${dir}/inbox.prisma`);
  copyFileSync("prisma/request.prisma", `${dir}/request.prisma`);
}
const env = {
  ...process.env,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
};
// Prisma says where it loaded each config and schema from, on stderr: six lines of noise in front of `npm run example`
// and `npm test` when all goes well. Its output is shown only when it fails.
for (const config of ["prisma.config.ts", "examples/prisma.config.ts", "test/docs/prisma.config.ts"]) {
  const run = spawnSync("npx", ["prisma", "generate", "--config", config], { encoding: "utf8", env });
  if (run.status !== 0) {
    process.stderr.write(`prisma generate --config ${config} failed:\n${run.stdout}${run.stderr}${run.error ?? ""}\n`);
    process.exit(1);
  }
}
