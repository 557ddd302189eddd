// The helpers the commands' flag parsers share (src/cli/flags/common.ts): text in, a value or a refusal that names
// the flag or the environment variable it came from. Database-free.
import { describe, expect, it } from "vitest";
import {
  booleanText,
  choiceText,
  countFlag,
  integerText,
  parseFlags,
  parseLogFormat,
  setting,
} from "../../../src/cli/flags/common.js";
import { parseInboxWorkerConfig } from "../../../src/cli/flags/inbox.js";
import { parseWorkerConfig } from "../../../src/cli/flags/worker.js";
import { OutboxConfigError } from "../../../src/index.js";

describe("shared flag helpers", () => {
  it("a flag wins over its variable; an empty variable is unset", () => {
    expect(setting({ schema: "a" }, "schema", { OUTBOX_SCHEMA: "b" }, "OUTBOX_SCHEMA")).toEqual({
      value: "a",
      source: "--schema",
    });
    expect(setting({}, "schema", { OUTBOX_SCHEMA: "b" }, "OUTBOX_SCHEMA")).toEqual({
      value: "b",
      source: "OUTBOX_SCHEMA",
    });
    expect(setting({}, "schema", { OUTBOX_SCHEMA: "" }, "OUTBOX_SCHEMA").value).toBeUndefined();
  });

  it("integers are decimal digits, within a range when one is given", () => {
    expect(integerText("--n", "42")).toBe(42);
    expect(() => integerText("--n", "4e2")).toThrow(new OutboxConfigError('Expected --n to be an integer, got "4e2".'));
    expect(() => integerText("N", "-1")).toThrow('Expected N to be an integer, got "-1".');
    expect(() => integerText("--top", "0", { min: 1, max: 10 })).toThrow(
      'Expected --top to be an integer from 1 to 10, got "0".',
    );
    expect(countFlag("--limit", undefined, 50)).toBe(50);
    expect(() => countFlag("--limit", "1000001", 50)).toThrow("from 1 to 1000000");
  });

  it("choices are taken in any case and listed bare when refused", () => {
    expect(choiceText("--log-format", "JSON", ["text", "json"])).toBe("json");
    expect(() => choiceText("--log-format", "xml", ["text", "json"])).toThrow(
      new OutboxConfigError('Expected --log-format to be text or json, got "xml".'),
    );
  });

  it("booleans: true, false, 1, 0; empty is unset", () => {
    expect(booleanText("X", "TRUE")).toBe(true);
    expect(booleanText("X", "0")).toBe(false);
    expect(booleanText("X", "")).toBeUndefined();
    expect(booleanText("X", undefined)).toBeUndefined();
    expect(() => booleanText("X", "yes")).toThrow('Expected X to be true or false, got "yes".');
  });

  it("the log format names where a bad one came from, for the worker and the inbox alike", () => {
    expect(parseLogFormat({}, {})).toBe("text");
    expect(() => parseLogFormat({}, { OUTBOX_LOG_FORMAT: "xml" })).toThrow(
      'Expected OUTBOX_LOG_FORMAT to be text or json, got "xml".',
    );
    const env = { DATABASE_URL: "postgresql://db/x", AMQP_URL: "amqp://mq", OUTBOX_INBOX_HANDLERS: "./h.js" };
    expect(() => parseWorkerConfig(["--log-format", "xml"], env)).toThrow("Expected --log-format to be text or json");
    expect(() => parseInboxWorkerConfig(["--log-format", "xml"], env)).toThrow(
      "Expected --log-format to be text or json",
    );
    expect(parseInboxWorkerConfig([], { ...env, OUTBOX_LOG_FORMAT: "json" }).logFormat).toBe("json");
  });

  it("unknown flags point at the command's help", () => {
    expect(() => parseFlags("status", ["--verbose"], { json: { type: "boolean" } })).toThrow(
      new OutboxConfigError("Unknown option '--verbose'. See prisma-outbox status --help."),
    );
    expect(() => parseFlags("status", ["extra"], {})).toThrow(
      /^Unexpected argument 'extra'\. See prisma-outbox status --help\.$/,
    );
  });
});
