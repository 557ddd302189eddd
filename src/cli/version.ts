// The package's version, as `prisma-outbox --version` and `prisma-outbox worker --version` print it.
import { readFileSync } from "node:fs";

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return pkg.version as string;
}
