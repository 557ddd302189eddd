// `prisma-outbox worker`: runs the outbox relay as its own process until SIGTERM/SIGINT stops it gracefully (a second
// signal exits at once).
import { OutboxConfigError } from "../errors.js";
import { createRelay } from "../relay/relay.js";
import { createLogger } from "../runtime/logger.js";
import { parseWorkerConfig, WORKER_HELP } from "./flags/worker.js";
import { runUntilSignal } from "./run-until-signal.js";
import { packageVersion } from "./version.js";

export async function runWorker(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let config: ReturnType<typeof parseWorkerConfig>;
  try {
    config = parseWorkerConfig(argv, env);
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
    process.stdout.write(`${packageVersion()}\n`);
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

  return runUntilSignal(
    {
      start: () => relay.start(),
      stop: () => relay.stop(),
      health: () => relay.health(),
      stoppingFields: { deadlineMs: relay.options.stopTimeoutMs },
      // The relay logged why ("relay could not start"); stop() closes what it had opened.
      startFailed: () => relay.stop(),
    },
    {
      logger,
      metricsPort: config.metricsPort,
      metricsHost: config.metricsHost,
      dashboard: config.dashboard && {
        ...config.dashboard,
        databaseUrl: config.relay.databaseUrl as string,
        schema: relay.options.schema,
      },
    },
  );
}
