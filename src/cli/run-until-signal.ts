// What `prisma-outbox worker` and `prisma-outbox inbox` do alike once their part is built: the optional metrics port
// (opened before start(): the part takes its meter when it starts), start, then run until SIGTERM/SIGINT stops it
// gracefully (a second signal exits at once). The exit code: 0 after a graceful stop; after a failed start 2 when a
// person must change something (OutboxConfigError), 1 when waiting may fix it; 1 when stop() fails; 2 when the
// metrics port cannot be served.
import { OutboxConfigError } from "../errors.js";
import type { Logger } from "../runtime/logger.js";
import { type ServedDashboard, serveDashboard } from "./dashboard/serve.js";
import { type MetricsServer, startMetricsServer } from "./metrics-server.js";

/** The relay or the inbox, as the CLI runs it. */
export interface RunnablePart {
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): Promise<{ ok: boolean }>;
  /** Fields of the "stopping" log line. */
  stoppingFields?: Record<string, unknown>;
  /** After start() failed (no signal came first): say why or clean up, where the part itself does not. */
  startFailed(error: unknown): Promise<void> | void;
}

export interface RunOptions {
  logger: Logger;
  metricsPort?: number | undefined;
  metricsHost?: string | undefined;
  /** The dashboard at /ui of the metrics port (--dashboard); undefined: none. */
  dashboard?:
    | { databaseUrl: string; schema: string | undefined; allowActions: boolean; token: string | undefined }
    | undefined;
}

export async function runUntilSignal(
  part: RunnablePart,
  { logger, metricsPort, metricsHost, dashboard }: RunOptions,
): Promise<number> {
  let endpoints: MetricsServer | undefined;
  let ui: ServedDashboard | undefined;
  if (metricsPort !== undefined) {
    try {
      ui = dashboard && serveDashboard({ ...dashboard, logger });
      endpoints = await startMetricsServer({
        port: metricsPort,
        host: metricsHost,
        health: () => part.health(),
        logger,
        ui: ui?.dashboard.handle,
      });
    } catch (error) {
      logger.error(`cannot serve --metrics-port ${metricsPort}: ${(error as Error).message}`);
      await ui?.close();
      return 2;
    }
  }
  const code = await run(part, logger);
  await endpoints?.close();
  await ui?.close();
  return code;
}

async function run(part: RunnablePart, logger: Logger): Promise<number> {
  let signals = 0;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.error("second signal: exiting without waiting", { signal });
        process.exit(1);
      }
      logger.info("stopping", { signal, ...part.stoppingFields });
      part.stop().then(
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
    await part.start();
  } catch (error) {
    if (signals > 0) return stopped;
    await part.startFailed(error);
    return error instanceof OutboxConfigError ? 2 : 1;
  }
  return stopped;
}
