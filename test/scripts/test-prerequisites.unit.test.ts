// `npm test`'s pretest step (scripts/test-prerequisites.mjs) on a fresh machine: chromium and pgbouncer missing are
// simulated (PRISMA_OUTBOX_PRETEND_MISSING), root or not too (PRISMA_OUTBOX_PRETEND_UID), and apt-get is a recording
// stand-in put first on PATH, so nothing is installed or uninstalled here.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const SCRIPT = resolve(import.meta.dirname, "../../scripts/test-prerequisites.mjs");
const dir = mkdtempSync(join(tmpdir(), "prisma-outbox-prereq-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fake apt-get in a directory of its own: appends its arguments to a log and succeeds (or fails). */
function fakeAptGet(name: string, exitCode = 0): { bin: string; log: string } {
  const bin = join(dir, name);
  const log = join(dir, `${name}.log`);
  writeFileSync(log, "");
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, "apt-get"), `#!/bin/sh\necho "$*" >> '${log}'\nexit ${exitCode}\n`);
  chmodSync(join(bin, "apt-get"), 0o755);
  return { bin, log };
}

function run(env: Record<string, string>) {
  const r = spawnSync(process.execPath, [SCRIPT], {
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "", ...env },
    timeout: 30_000,
  });
  return { code: r.status, stderr: r.stderr };
}

describe("npm test's prerequisites (chromium, pgbouncer)", () => {
  it("both installed: goes on without a word about them", () => {
    const { code, stderr } = run({});
    expect(code).toBe(0);
    expect(stderr).not.toMatch(/missing|installing/);
  });

  it("missing and not root: stops at once with the exact command, installs nothing", () => {
    const apt = fakeAptGet("apt-not-root");
    const { code, stderr } = run({
      PATH: `${apt.bin}:${process.env.PATH}`,
      PRISMA_OUTBOX_PRETEND_MISSING: "chromium,pgbouncer",
      PRISMA_OUTBOX_PRETEND_UID: "1000",
    });
    expect(code).toBe(1);
    expect(stderr).toContain("missing: chromium (");
    expect(stderr).toContain("pgbouncer (");
    expect(stderr).toContain("sudo apt-get update && sudo apt-get install -y chromium pgbouncer");
    expect(readFileSync(apt.log, "utf8")).toBe("");
  });

  it("missing, root, apt-get present: says what it installs and why, installs only what is missing, goes on", () => {
    const apt = fakeAptGet("apt-root");
    const { code, stderr } = run({
      PATH: `${apt.bin}:${process.env.PATH}`,
      PRISMA_OUTBOX_PRETEND_MISSING: "pgbouncer",
      PRISMA_OUTBOX_PRETEND_UID: "0",
    });
    expect(stderr).toContain("installing Debian's pgbouncer with apt-get (pgbouncer (");
    expect(readFileSync(apt.log, "utf8").split("\n").filter(Boolean)).toEqual([
      "update -qq",
      "install -y -qq pgbouncer",
    ]);
    expect(stderr).toMatch(/installed: pgbouncer \(\/\S+\)/);
    expect(code).toBe(0);
  });

  it("missing, root, apt-get failing: stops with the command to run", () => {
    const apt = fakeAptGet("apt-failing", 100);
    const { code, stderr } = run({
      PATH: `${apt.bin}:${process.env.PATH}`,
      PRISMA_OUTBOX_PRETEND_MISSING: "chromium",
      PRISMA_OUTBOX_PRETEND_UID: "0",
    });
    expect(code).toBe(1);
    expect(stderr).toContain("apt-get update && apt-get install -y chromium");
  });

  it("missing and no apt-get: stops at once, naming the packages", () => {
    // PATH is an empty directory: no apt-get (the script itself runs on node's absolute path).
    const empty = join(dir, "empty");
    mkdirSync(empty);
    const { code, stderr } = run({
      PATH: empty,
      PRISMA_OUTBOX_PRETEND_MISSING: "chromium,pgbouncer",
      PRISMA_OUTBOX_PRETEND_UID: "0",
    });
    expect(code).toBe(1);
    expect(stderr).toContain("no apt-get here: install chromium pgbouncer with this system's package manager");
  });
});
