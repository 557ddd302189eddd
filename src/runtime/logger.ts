// One logger contract for every part (relay, inbox, request-reply, CLI), one default line format, and the two
// wrappers every logger a user passes goes through: guarded (a throwing logger never fails a batch) and scrubbing
// (no connection secret reaches a line).
import { OutboxConfigError } from "../errors.js";
import { escapeControl, escapeJsonControl, textFields } from "./escape.js";

/** Where a part reports what it does: a message and structured fields. Each method must not throw. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

type Level = keyof Logger;

/** The part a default logger speaks for: the first word after `prisma-outbox` on each line. */
type LoggerComponent = "relay" | "inbox" | "requests";

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

/**
 * The default of every part: warnings and errors on stderr, one line each,
 * `prisma-outbox <component> <level>: <message> key=value ...`. Nobody configured a logger, yet what stops progress
 * (a missing exchange, a refused login) must still be seen.
 */
export function stderrLogger(component: LoggerComponent): Logger {
  const write = (level: Level) => (message: string, fields?: Record<string, unknown>) =>
    process.stderr.write(`${escapeControl(`prisma-outbox ${component} ${level}: ${message}${textFields(fields)}`)}\n`);
  return { info() {}, warn: write("warn"), error: write("error") };
}

/** One line per entry on stdout (info) or stderr (warn, error): JSON for log shippers, or plain text for people. */
export function createLogger(format: "text" | "json", write = defaultWrite): Logger {
  const log =
    (level: Level) =>
    (message: string, fields: Record<string, unknown> = {}) => {
      try {
        const time = new Date().toISOString();
        // Text from outside (routing keys, error messages) must not forge lines or reach the terminal as controls.
        const line =
          format === "json"
            ? escapeJsonControl(JSON.stringify({ time, level, msg: message, ...fields }))
            : escapeControl(`${time} ${level.toUpperCase()} ${message}${textFields(fields)}`);
        write(level, line);
      } catch {
        // logging must never take the worker down
      }
    };
  return { info: log("info"), warn: log("warn"), error: log("error") };
}

function defaultWrite(level: Level, line: string): void {
  (level === "info" ? process.stdout : process.stderr).write(`${line}\n`);
}

/** Every call guarded: a logger that throws must never fail a batch, or anything else. */
function guardedLogger(logger: Logger): Logger {
  const call = (method: Level) => (message: string, fields?: Record<string, unknown>) => {
    try {
      logger[method](message, fields);
    } catch {
      // the logger's failure is its own
    }
  };
  return { info: call("info"), warn: call("warn"), error: call("error") };
}

/** The `logger` option of every part: a `Logger`, `false` for none, or absent for the part's stderr default. */
export function loggerOption(value: unknown, component: LoggerComponent): Logger {
  if (value === false) return silentLogger;
  if (value === undefined) return stderrLogger(component);
  if (
    typeof value !== "object" ||
    value === null ||
    ["info", "warn", "error"].some((m) => typeof (value as Record<string, unknown>)[m] !== "function")
  ) {
    throw new OutboxConfigError("Expected `logger` to be { info, warn, error } (functions), or false for none.");
  }
  return guardedLogger(value as Logger);
}

/**
 * The logger with the connection URLs and their secrets taken out of every message and field: a driver's error may
 * echo a URL, or name a piece of a misread password as the host it could not reach.
 */
export function scrubbingLogger(logger: Logger, scrub: (text: string) => string): Logger {
  const clean = (value: unknown): unknown => {
    if (typeof value === "string") return scrub(value);
    if (value instanceof Error) {
      const message = scrub(value.message);
      if (message === value.message) return value;
      const copy = new Error(message);
      copy.name = value.name;
      return copy;
    }
    return value;
  };
  const call = (method: Level) => (message: string, fields?: Record<string, unknown>) =>
    logger[method](
      scrub(message),
      fields && Object.fromEntries(Object.entries(fields).map(([key, value]) => [key, clean(value)])),
    );
  return { info: call("info"), warn: call("warn"), error: call("error") };
}
