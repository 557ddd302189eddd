// `prisma-outbox worker`: runs the outbox relay as its own process until SIGTERM/SIGINT stops it gracefully (a second
// signal exits at once).
import { OutboxConfigError } from "../errors.js";
import { createRelay } from "../relay/relay.js";
import { createLogger } from "../runtime/logger.js";
import { parseWorkerConfig, WORKER_HELP } from "./flags/worker.js";
import { type MetricsServer, startMetricsServer } from "./metrics-server.js";
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
