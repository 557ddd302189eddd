// The waiting helpers every test relies on: they return as soon as the condition holds, and fail naming what they
// waited for.
import { describe, expect, it } from "vitest";
import { atLocalPort } from "./tcp-proxy.js";
import { until, untilValue, waitUntil } from "./wait.js";

describe("waitUntil", () => {
  it("resolves once the condition holds, polling sync and async conditions", async () => {
    let n = 0;
    await waitUntil(() => ++n >= 3, "three polls", 1_000, 1);
    expect(n).toBe(3);
    await waitUntil(async () => ++n >= 5, "five polls", 1_000, 1);
    expect(n).toBe(5);
  });

  it("throws after the timeout, naming what it waited for (a function is asked at that moment)", async () => {
    await expect(waitUntil(() => false, "the sky to fall", 30, 5)).rejects.toThrow(
      "timed out after 30 ms waiting for the sky to fall",
    );
    let last = 0;
    await expect(
      waitUntil(
        () => ++last < 0,
        () => `last was ${last}`,
        30,
        5,
      ),
    ).rejects.toThrow(/last was [1-9]/);
  });
});

describe("until", () => {
  it("fails with the condition's text", async () => {
    await expect(until(() => false, 20, 5)).rejects.toThrow(
      /timed out after 20 ms waiting for a condition: \(\) => false/,
    );
  });
});

describe("untilValue", () => {
  it("returns the first value that passes, and fails with the last one read", async () => {
    let n = 0;
    expect(
      await untilValue(
        async () => ++n,
        (v) => v === 2,
        "two",
        1_000,
        1,
      ),
    ).toBe(2);
    await expect(
      untilValue(
        async () => ({ n: 7 }),
        () => false,
        "never",
        20,
        5,
      ),
    ).rejects.toThrow('never: not within 20 ms (last: {"n":7})');
  });
});

it("atLocalPort keeps everything of a URL but its host and port", () => {
  expect(atLocalPort("amqp://guest:pw@rabbit.example:5672/vhost?heartbeat=5", 40123)).toBe(
    "amqp://guest:pw@127.0.0.1:40123/vhost?heartbeat=5",
  );
});
