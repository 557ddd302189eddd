// The relays a test file makes: one factory with the file's defaults, and every relay stopped after each test.
import { afterEach } from "vitest";
import { createRelay, type Relay } from "../../src/index.js";

export type TestRelayOptions = Partial<Parameters<typeof createRelay>[0]>;

export interface TestRelays {
  /** A relay with the file's defaults and `options` over them; stopped after the test. */
  relay(options?: TestRelayOptions): Relay;
  /** Stops `relay` after the test with the others (one made by createRelay itself). */
  track(relay: Relay): Relay;
  /** Runs `cleanup` after the test, once every relay has stopped (consumers, pools, proxies). */
  defer(cleanup: () => Promise<unknown>): void;
}

/**
 * Registers an afterEach that stops every relay of the test, then runs what the test deferred, then `after` (e.g. a
 * TRUNCATE for the next test).
 */
export function useTestRelays(defaults: TestRelayOptions, after?: () => Promise<unknown> | unknown): TestRelays {
  const relays: Relay[] = [];
  const closers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop()));
    await Promise.all(closers.splice(0).map((c) => c()));
    await after?.();
  });
  const track = (r: Relay) => {
    relays.push(r);
    return r;
  };
  return {
    relay: (options = {}) => track(createRelay({ ...defaults, ...options } as Parameters<typeof createRelay>[0])),
    track,
    defer: (cleanup) => {
      closers.push(cleanup);
    },
  };
}
