#!/usr/bin/env node
// The bundled worker: `prisma-outbox worker`. Signals are handled here, once per process, and nowhere else.
import { readFileSync } from "node:fs";
import { OutboxConfigError } from "../errors.js";
import { createRelay } from "../relay/relay.js";
import { createLogger } from "../runtime/logger.js";
import { runDeadLetters } from "./dead-letters-command.js";
import { parseWorkerConfig, WORKER_HELP } from "./flags/worker.js";
import { runInbox } from "./inbox-command.js";
import { type MetricsServer, startMetricsServer } from "./metrics-server.js";
import { runStatus } from "./status-command.js";

const USAGE = `Usage: prisma-outbox <command>

Commands:
  worker    run the outbox relay (prisma-outbox worker --help)
  inbox     run an inbox defined in your module (prisma-outbox inbox --help)
  status    backlog, dead letters and connected workers of the outbox and inbox (prisma-outbox status --help)
  dead-letters list|retry|purge
            the outbox's dead letters, or the inbox's dead rows with --inbox (prisma-outbox dead-letters --help)
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return pkg.version as string;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "-v" || command === "--version") {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (command === "inbox") return runInbox(rest, process.env);
  if (command === "status") return runStatus(rest, process.env);
  if (command === "dead-letters") return runDeadLetters(rest, process.env);
  if (command !== "worker") {
    const asked = command === undefined || command === "-h" || command === "--help";
    (asked ? process.stdout : process.stderr).write(asked ? USAGE : `Unknown command "${command}".\n\n${USAGE}`);
    return asked ? 0 : 2;
  }
  let config: ReturnType<typeof parseWorkerConfig>;
  try {
    config = parseWorkerConfig(rest, process.env);
  } catch (error) {
    if (!(error instanceof OutboxConfigError)) throw error;
    process.stderr.write(`prisma-outbox worker: ${error.message}\n`);
    return 2;
  }
  if (config.help) {
    process.stdout.write(WORKER_HELP);
    return 0;
  }
  if (config.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const logger = createLogger(config.logFormat);
  let relay: ReturnType<typeof createRelay>;
  try {
    relay = createRelay({ ...config.relay, logger });
  } catch (error) {
    if (!(error instanceof OutboxConfigError)) throw error;
    logger.error(`bad configuration: ${error.message}`);
    return 2;
  }

  // Before start(): the relay takes its meter when it starts.
  let endpoints: MetricsServer | undefined;
  if (config.metricsPort !== undefined) {
    try {
      endpoints = await startMetricsServer({
        port: config.metricsPort,
        host: config.metricsHost,
        health: () => relay.health(),
        logger,
      });
    } catch (error) {
      logger.error(`cannot serve --metrics-port ${config.metricsPort}: ${(error as Error).message}`);
      return 2;
    }
  }
  const code = await run(relay, logger);
  await endpoints?.close();
  return code;
}

/** Runs the relay until a signal stops it; the exit code. */
async function run(relay: ReturnType<typeof createRelay>, logger: ReturnType<typeof createLogger>): Promise<number> {
  let signals = 0;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.error("second signal: exiting without waiting", { signal });
        process.exit(1);
      }
      logger.info("stopping", { signal, deadlineMs: relay.options.stopTimeoutMs });
      relay.stop().then(
        () => resolve(0),
        (error) => {
          logger.error("stop failed", { error: String(error) });
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  try {
    await relay.start();
  } catch (error) {
    if (signals > 0) return stopped;
    // The relay logged why ("relay could not start") and closed what it had opened.
    await relay.stop();
    return error instanceof OutboxConfigError ? 2 : 1;
  }
  return stopped;
}

main(process.argv.slice(2)).then(
  (code) => {
    // The relay is stopped; a connection it had to abandon (a broker that never answers) must not keep the process
    // alive past its deadline. Exit once what was logged has been written.
    process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
  },
  (error) => {
    process.stderr.write(`prisma-outbox: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
