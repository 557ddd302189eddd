// The relay's options, resolved without any server: `createRelay` validates before it opens anything.
import { describe, expect, it } from "vitest";
import { createRelay, OutboxConfigError } from "../../src/index.js";

const valid = { databaseUrl: "postgresql://app@127.0.0.1:1/app", amqpUrl: "amqp://guest@127.0.0.1:1" };

describe("createRelay() batchSize", () => {
  it.each([
    [0, /`batchSize` to be an integer >= 1, got 0/],
    [-1, /`batchSize` to be an integer >= 1, got -1/],
    [1.5, /`batchSize` to be an integer >= 1, got 1.5/],
    ["10", /`batchSize` to be an integer >= 1/],
  ])("refuses batchSize %j with what to fix", (batchSize, message) => {
    const make = () => createRelay({ ...valid, batchSize: batchSize as number });
    expect(make).toThrow(OutboxConfigError);
    expect(make).toThrow(message);
  });

  it("takes 1, and defaults to 500", () => {
    expect(createRelay({ ...valid, batchSize: 1 }).options.batchSize).toBe(1);
    expect(createRelay(valid).options.batchSize).toBe(500);
  });
});
