// doctor()'s options and the relay's and inbox's doctorIntervalMs / doctorThresholds: defaults, and refusals in the
// words of config/validate.ts. Database-free.
import { describe, expect, it } from "vitest";
import { OutboxConfigError } from "../../src/errors.js";
import { doctorThresholdsOption, resolveDoctorOptions } from "../../src/ops/doctor-options.js";
import { resolveRelayOptions } from "../../src/relay/options.js";

describe("doctor() options", () => {
  it("defaults", () => {
    expect(resolveDoctorOptions()).toEqual({
      schema: "public",
      checks: "all",
      parts: undefined,
      xminHorizonWarnMs: 300_000,
      xminHorizonErrorMs: 1_800_000,
      xminHorizonWarnXids: 1_000_000,
      deadRowsWarn: 100_000,
      deadRowsError: 1_000_000,
      bloatRatio: 4,
      bloatMinBytes: 64 * 1024 * 1024,
      backlogAgeWarnMs: 60_000,
      backlogAgeErrorMs: 900_000,
      deadLetterWindowMs: 86_400_000,
      skip: [],
    });
  });

  it.each([
    [{ checks: "some" }, 'Expected `checks` to be "all" or "cheap", got "some".'],
    [{ deadRowsWarn: 0 }, "Expected `deadRowsWarn` to be an integer >= 1, got 0."],
    [{ xminHorizonWarnMs: -1 }, "Expected `xminHorizonWarnMs` to be an integer from 0 to"],
    [
      { backlogAgeWarnMs: 10, backlogAgeErrorMs: 5 },
      "Expected `backlogAgeErrorMs` (5) to be >= `backlogAgeWarnMs` (10).",
    ],
    [{ parts: [] }, "Expected `parts` to be a non-empty array"],
    [{ parts: ["outbox", "queue"] }, "Expected `parts[1]` to be"],
    [{ skip: ["xmin"] }, "Expected `skip[0]` to be one of"],
    [{ bloatRatio: 0.5 }, "Expected `bloatRatio` to be a number from 1 to 1000, got 0.5."],
    [{ xminHorizonWarnMss: 1 }, "Unknown option `xminHorizonWarnMss` of doctor(); did you mean `xminHorizonWarnMs`?"],
  ])("refuses %j", (options, message) => {
    expect(() => resolveDoctorOptions(options as never)).toThrow(OutboxConfigError);
    expect(() => resolveDoctorOptions(options as never)).toThrow(message);
  });

  it("doctorThresholds: thresholds only, validated like doctor()'s", () => {
    expect(doctorThresholdsOption("doctorThresholds", { deadRowsWarn: 5 })).toEqual({ deadRowsWarn: 5 });
    expect(() => doctorThresholdsOption("doctorThresholds", { schema: "x" })).toThrow(
      "Unknown `doctorThresholds` key `schema`",
    );
    expect(() => doctorThresholdsOption("doctorThresholds", { deadRowsWarn: "5" })).toThrow(
      "Expected `deadRowsWarn` to be an integer >= 1",
    );
    expect(() => doctorThresholdsOption("doctorThresholds", 5)).toThrow("Expected `doctorThresholds` to be an object");
  });

  it("the relay's doctorIntervalMs: 60 s by default, 0 turns it off, validated", () => {
    const base = { databaseUrl: "postgres://localhost/x", amqpUrl: "amqp://localhost", queue: false as const };
    expect(resolveRelayOptions(base).options.doctorIntervalMs).toBe(60_000);
    expect(resolveRelayOptions({ ...base, doctorIntervalMs: 0 }).options.doctorIntervalMs).toBe(0);
    expect(() => resolveRelayOptions({ ...base, doctorIntervalMs: -5 })).toThrow(
      "Expected `doctorIntervalMs` to be an integer from 0 to 2147483647, got -5.",
    );
  });
});
