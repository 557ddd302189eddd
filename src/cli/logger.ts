import { escapeControl, escapeJsonControl, textFields } from "../config/escape.js";
import type { RelayLogger } from "../config/relay-options.js";

type Level = "info" | "warn" | "error";

/** One line per entry on stdout (info) or stderr (warn, error): JSON for log shippers, or plain text for people. */
export function createLogger(format: "text" | "json", write = defaultWrite): RelayLogger {
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
