#!/usr/bin/env node
// `prisma-outbox <command>`: dispatch only; each command lives in its own module. Signals are handled by the
// commands that run until one stops them (relay-command.ts, inbox-command.ts), once per process.
import { runDashboard } from "./dashboard-command.js";
import { runDeadLetters } from "./dead-letters-command.js";
import { runDoctor } from "./doctor-command.js";
import { runInbox } from "./inbox-command.js";
import { runWorker } from "./relay-command.js";
import { runStatus } from "./status-command.js";
import { packageVersion } from "./version.js";

const USAGE = `Usage: prisma-outbox <command>

Commands:
  worker    run the outbox relay (prisma-outbox worker --help)
  inbox     run an inbox defined in your module (prisma-outbox inbox --help)
  status    backlog, dead letters and connected workers of the outbox and inbox (prisma-outbox status --help)
  doctor    what is wrong with the database under them, what it costs, what to do (prisma-outbox doctor --help)
  dead-letters list|retry|purge
            the outbox's dead letters, or the inbox's dead rows with --inbox (prisma-outbox dead-letters --help)
  dashboard a web page of the backlog, doctor's findings and dead letters (prisma-outbox dashboard --help)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "-v" || command === "--version") {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (command === "inbox") return runInbox(rest, process.env);
  if (command === "status") return runStatus(rest, process.env);
  if (command === "dead-letters") return runDeadLetters(rest, process.env);
  if (command === "doctor") return runDoctor(rest, process.env);
  if (command === "worker") return runWorker(rest, process.env);
  if (command === "dashboard") return runDashboard(rest, process.env);
  const asked = command === undefined || command === "-h" || command === "--help";
  (asked ? process.stdout : process.stderr).write(asked ? USAGE : `Unknown command "${command}".\n\n${USAGE}`);
  return asked ? 0 : 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    // The relay or inbox is stopped; a connection it had to abandon (a broker that never answers) must not keep the process
    // alive past its deadline. Exit once what was logged has been written.
    process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
  },
  (error) => {
    process.stderr.write(`prisma-outbox: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
