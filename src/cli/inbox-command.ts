// `prisma-outbox inbox`: loads the user's module that exports an inbox definition (as graphile-worker loads task
// files), starts it, and stops it gracefully on SIGTERM/SIGINT (a second signal exits at once).
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { OutboxConfigError } from "../errors.js";
import { type Inbox, isInbox } from "../inbox/inbox.js";
import { createLogger } from "../runtime/logger.js";
import { INBOX_WORKER_HELP, parseInboxWorkerConfig } from "./flags/inbox.js";
import { runUntilSignal } from "./run-until-signal.js";

/** The inbox a loaded module exports: the named export, else `default`, else `inbox`, else its only Inbox. */
function findInbox(module: Record<string, unknown>, exportName: string | undefined, specifier: string): Inbox {
  if (exportName !== undefined) {
    const value = module[exportName];
    if (isInbox(value)) return value;
    throw new OutboxConfigError(`${specifier} has no export "${exportName}" made by inbox().`);
  }
  for (const name of ["default", "inbox"]) if (isInbox(module[name])) return module[name] as Inbox;
  const all = Object.values(module).filter(isInbox);
  if (all.length === 1) return all[0] as Inbox;
  throw new OutboxConfigError(
    all.length === 0
      ? `${specifier} exports no inbox: export the value inbox() returns (export default inbox({ ... })).`
      : `${specifier} exports ${all.length} inboxes: choose one with --export NAME.`,
  );
}

export async function runInbox(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let config: ReturnType<typeof parseInboxWorkerConfig>;
  try {
    config = parseInboxWorkerConfig(argv, env);
  } catch (error) {
    if (!(error instanceof OutboxConfigError)) throw error;
    process.stderr.write(`prisma-outbox inbox: ${error.message}\n`);
    return 2;
  }
  if (config.help) {
    process.stdout.write(INBOX_WORKER_HELP);
    return 0;
  }
  const logger = createLogger(config.logFormat);
  const specifier = config.handlers;
  const url = specifier.startsWith(".") || isAbsolute(specifier) ? pathToFileURL(resolve(specifier)).href : specifier;
  let box: Inbox;
  try {
    box = findInbox((await import(url)) as Record<string, unknown>, config.exportName, specifier);
  } catch (error) {
    logger.error("cannot load the inbox", { module: specifier, error: (error as Error).message });
    return 2;
  }
  // What becomes of messages (invalid, retried, dead-lettered) is logged by the inbox itself, with this logger: not
  // again here.

  return runUntilSignal(
    {
      // logs "inbox started"
      start: () =>
        box.start({
          databaseUrl: config.databaseUrl,
          amqpUrl: config.amqpUrl,
          logger,
          doctorIntervalMs: config.doctorIntervalMs,
        }),
      stop: () => box.stop(),
      health: () => box.health(),
      startFailed: (error) => logger.error("could not start", { error: (error as Error).message }),
    },
    {
      logger,
      metricsPort: config.metricsPort,
      metricsHost: config.metricsHost,
      dashboard: config.dashboard && {
        ...config.dashboard,
        databaseUrl: config.databaseUrl,
        // The inbox table's own schema unless --schema / OUTBOX_SCHEMA names the outbox's.
        schema: config.dashboardSchema ?? box.schema,
      },
    },
  );
}
