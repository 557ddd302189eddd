// Prints the versions of @prisma/client, prisma and @prisma/adapter-pg for a Prisma 7 release, resolved from the
// registry now: "newest" (each package's newest 7.x), "lowest" (the lowest supported release), or an exact version.
// CI tests both ends of the supported range this way, so a new Prisma minor that breaks the extension turns it red.
import { execFileSync } from "node:child_process";

const LOWEST = "7.9.0";
const which = process.argv[2] ?? "newest";
const packages = ["@prisma/client", "prisma", "@prisma/adapter-pg"];

function newest7(pkg) {
  const versions = JSON.parse(execFileSync("npm", ["view", pkg, "versions", "--json"], { encoding: "utf8" }));
  const releases = versions.filter((v) => /^7\.\d+\.\d+$/.test(v));
  releases.sort((a, b) => {
    const [x, y] = [a, b].map((v) => v.split(".").map(Number));
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
  return releases.at(-1);
}

const versions = which === "newest" ? packages.map(newest7) : packages.map(() => (which === "lowest" ? LOWEST : which));
console.log(versions.join(" "));
