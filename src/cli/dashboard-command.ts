// `prisma-outbox dashboard`: the dashboard (src/cli/dashboard/) on a port of its own, 127.0.0.1 unless --host says
// otherwise, until SIGTERM/SIGINT. Exit codes: 0 after a signal; 2 for flags that cannot be used or a port that
// cannot be listened on.
import { once } from "node:events";
import { createServer } from "node:http";
import { OutboxConfigError } from "../errors.js";
import { createLogger } from "../runtime/logger.js";
import { serveDashboard } from "./dashboard/serve.js";
import { DASHBOARD_HELP, type DashboardConfig, parseDashboardConfig } from "./flags/dashboard.js";

export async function runDashboard(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let config: DashboardConfig;
  try {
    config = parseDashboardConfig(argv, env);
  } catch (error) {
    if (!(error instanceof OutboxConfigError)) throw error;
    process.stderr.write(`prisma-outbox dashboard: ${error.message}\n`);
    return 2;
  }
  if (config.help) {
    process.stdout.write(DASHBOARD_HELP);
    return 0;
  }
  const logger = createLogger(config.logFormat);
  let served: ReturnType<typeof serveDashboard>;
  try {
    served = serveDashboard({
      databaseUrl: config.databaseUrl,
      schema: config.schema,
      logger,
      allowActions: config.allowActions,
      token: config.token,
      sampleIntervalMs: config.sampleIntervalMs,
    });
  } catch (error) {
    if (!(error instanceof OutboxConfigError)) throw error;
    logger.error(`bad configuration: ${error.message}`);
    return 2;
  }
  const server = createServer((req, res) => {
    served.dashboard.handle(req, res).then(
      (handled) => {
        if (handled) return;
        res.writeHead(302, { location: "/ui" }).end();
      },
      () => res.end(),
    );
  });
  server.listen(config.port, config.host);
  try {
    await Promise.race([
      once(server, "listening"),
      once(server, "error").then(([error]) => {
        throw error;
      }),
    ]);
  } catch (error) {
    logger.error(`cannot listen on ${config.host}:${config.port}: ${(error as Error).message}`);
    await served.close();
    return 2;
  }
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : config.port;
  logger.info("dashboard listening", {
    url: `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}/ui`,
    host: config.host,
    port,
    schema: config.schema,
    actions: config.allowActions ? "allowed" : "read-only",
    token: config.token === undefined ? "none" : "required",
  });
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  logger.info("stopping", { signal });
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await served.close();
  return 0;
}
