// The ids a claim by id left behind a busy ordering key (src/inbox/held-back.ts), database-free: held only while a keyed
// row of the processor may hold them back, given back when a keyed row finishes, dropped once claimed again in vain
// past the sweep interval.
import { afterEach, describe, expect, it, vi } from "vitest";
import { byId, HeldBackIds } from "../../src/inbox/held-back.js";
import type { ClaimedInboxRow } from "../../src/sql/inbox/claim.js";

const row = (id: string, key: string | null = "k") => ({ id, ordering_key: key }) as ClaimedInboxRow;

afterEach(() => {
  vi.useRealTimers();
});

describe("HeldBackIds", () => {
  it("holds what a claim left while a keyed row runs here, and gives it back when a keyed row finishes", () => {
    const held = new HeldBackIds(100, 1_000);
    const keyed = held.started([row("1")]);
    expect(held.afterClaim(["2", "3"], [], [], held.done)).toBe(false);
    expect(held.finished(keyed)).toBe(true);
    expect(held.take()).toEqual(["2", "3"]);
    expect(held.take()).toEqual([]);
  });

  it("holds nothing when no keyed row is here: what holds the ids back is elsewhere, for the sweeper", () => {
    const held = new HeldBackIds(100, 1_000);
    held.afterClaim(["2", "3"], [row("2", null)], [], held.done);
    const unkeyed = held.started([row("4", null)]);
    expect(held.finished(unkeyed)).toBe(false);
    expect(held.take()).toEqual([]);
  });

  it("a keyed row claimed or buffered with them, or one that finished while the claim ran, holds them", () => {
    const held = new HeldBackIds(100, 1_000);
    held.afterClaim(["1", "2"], [row("1")], [], held.done);
    expect(held.take()).toEqual(["2"]);
    const held2 = new HeldBackIds(100, 1_000);
    held2.afterClaim(["5"], [], [{ row: row("4") }], held2.done);
    expect(held2.take()).toEqual(["5"]);
    const held3 = new HeldBackIds(100, 1_000);
    const before = held3.done;
    held3.finished(held3.started([row("6")]));
    expect(held3.afterClaim(["7"], [], [], before)).toBe(true);
    expect(held3.take()).toEqual(["7"]);
  });

  it("an id claimed again in vain is kept within the sweep interval, dropped past it", () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    const held = new HeldBackIds(100, 1_000);
    const keyed = held.started([row("1")]);
    held.afterClaim(["2"], [], [], held.done);
    vi.advanceTimersByTime(500);
    held.afterClaim(held.take(), [], [], held.done);
    expect(held.take()).toEqual(["2"]);
    vi.advanceTimersByTime(600);
    held.afterClaim(held.take(), [], [], held.done);
    expect(held.take()).toEqual([]);
    held.finished(keyed);
  });

  it("orders row ids as numbers", () => {
    expect(["10", "9", "100", "11"].sort(byId)).toEqual(["9", "10", "11", "100"]);
  });
});
