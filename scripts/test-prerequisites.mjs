// `npm test`'s first step (pretest): the suite needs two programs besides PostgreSQL and RabbitMQ, Debian's `chromium`
// (test/request-reply/browser.test.ts drives it) and `pgbouncer` (the scenarios through a pooler). None of their tests
// is skipped when one is missing, so this step makes sure they are there before minutes of tests run:
//   - both found: nothing to do;
//   - missing, running as root with apt-get: installs them, saying what and why, then goes on;
//   - missing otherwise (not root, no apt-get): stops at once, exit 1, with the exact command to run.
// It enables RabbitMQ's consistent-hash exchange plugin where the broker runs here (the partitioned inbox tests).
// It also says, in one line, when the Node.js running the tests is not a line the package supports (the tests run on
// it anyway: they are development tooling; CI runs them on every supported line).
//
// For its own test (test/scripts/test-prerequisites.unit.test.ts), without uninstalling anything:
//   PRISMA_OUTBOX_PRETEND_MISSING=chromium,pgbouncer   look as if these were not installed (before any install)
//   PRISMA_OUTBOX_PRETEND_UID=1000                      look as if running as this user id
// apt-get is whatever `apt-get` is first on PATH, so a test can put a recording one there.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

const PACKAGES = {
  chromium: { why: "the request-reply page test drives it headless", paths: [] },
  pgbouncer: {
    why: "the relay's scenarios through a transaction-mode pooler",
    paths: ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer"],
  },
};

const say = (line) => process.stderr.write(`npm test: ${line}\n`);

function onPath(command) {
  const found = spawnSync("/bin/sh", ["-c", `command -v ${command}`], { encoding: "utf8" });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

function installed(name) {
  return PACKAGES[name].paths.find((p) => existsSync(p)) ?? onPath(name);
}

function nodeLineNotice() {
  const range = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).engines.node;
  const majors = [...range.matchAll(/(\^|>=)\s*(\d+)/g)].map((m) => ({ op: m[1], major: Number(m[2]) }));
  const major = Number(process.versions.node.split(".")[0]);
  const supported = majors.some((m) => (m.op === "^" ? m.major === major : major >= m.major));
  if (!supported) {
    say(
      `Node ${process.version} is not a line the package supports (engines: ${range}); the tests run on it as ` +
        "development tooling, and CI runs them on every supported line (.ci/run).",
    );
  }
}

const pretend = new Set((process.env.PRISMA_OUTBOX_PRETEND_MISSING ?? "").split(",").filter(Boolean));
const uid = process.env.PRISMA_OUTBOX_PRETEND_UID ?? String(process.getuid?.() ?? -1);

/**
 * Partitioned inbox queues (test/inbox/partitions*.test.ts) need RabbitMQ's bundled consistent-hash exchange plugin.
 * `rabbitmq-plugins enable` is idempotent; it works only where the broker runs (this machine). Elsewhere the tests
 * fail saying how to enable it. Skipped under this script's own test (the PRETEND settings).
 */
function enableHashExchange() {
  if (process.env.PRISMA_OUTBOX_PRETEND_MISSING !== undefined || process.env.PRISMA_OUTBOX_PRETEND_UID !== undefined) {
    return;
  }
  if (onPath("rabbitmq-plugins") === undefined) return;
  // The broker's list of enabled plugins: reading it saves the ~10 s rabbitmq-plugins takes to start.
  const file = process.env.RABBITMQ_ENABLED_PLUGINS_FILE ?? "/etc/rabbitmq/enabled_plugins";
  if (existsSync(file) && readFileSync(file, "utf8").includes("rabbitmq_consistent_hash_exchange")) return;
  const run = spawnSync("rabbitmq-plugins", ["enable", "rabbitmq_consistent_hash_exchange"], { encoding: "utf8" });
  if (run.status !== 0) {
    say(
      "could not enable RabbitMQ's rabbitmq_consistent_hash_exchange plugin (the partitioned inbox tests need it): " +
        "run `rabbitmq-plugins enable rabbitmq_consistent_hash_exchange` as the broker's user.",
    );
  }
}

nodeLineNotice();
enableHashExchange();
const missing = Object.keys(PACKAGES).filter((name) => pretend.has(name) || installed(name) === undefined);
if (missing.length === 0) process.exit(0);

const list = missing.join(" ");
const reasons = missing.map((name) => `${name} (${PACKAGES[name].why})`).join("; ");
const aptGet = onPath("apt-get");
if (uid !== "0" || aptGet === undefined) {
  say(`missing: ${reasons}.`);
  if (aptGet === undefined) {
    say(`no apt-get here: install ${list} with this system's package manager, then run npm test again.`);
  } else {
    say("not root, so not installing them. Run, then npm test again:");
  }
  say(`  sudo apt-get update && sudo apt-get install -y ${list}`);
  process.exit(1);
}

say(`installing Debian's ${list} with apt-get (${reasons}); this happens once.`);
const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
try {
  execFileSync(aptGet, ["update", "-qq"], { stdio: ["ignore", "ignore", "inherit"], env });
  execFileSync(aptGet, ["install", "-y", "-qq", ...missing], { stdio: ["ignore", "ignore", "inherit"], env });
} catch {
  say(`apt-get failed (above). Run it yourself, then npm test again:\n  apt-get update && apt-get install -y ${list}`);
  process.exit(1);
}
if (missing.includes("pgbouncer")) {
  // The package enables a system service on the default port; the tests start PgBouncers of their own.
  spawnSync("/bin/sh", ["-c", "command -v systemctl >/dev/null && systemctl disable --now pgbouncer"], {
    stdio: "ignore",
  });
}
const still = missing.filter((name) => installed(name) === undefined);
if (still.length > 0) {
  say(`apt-get ran, yet ${still.join(" and ")} cannot be found on PATH (${process.env.PATH}).`);
  process.exit(1);
}
say(`installed: ${missing.map((name) => `${name} (${installed(name)})`).join(", ")}.`);
