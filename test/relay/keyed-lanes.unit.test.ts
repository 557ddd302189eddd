// The keyed-lane state machine of a drain loop (src/relay/keyed-lanes.ts), without a database: a clock, a mode, and
// the claims' results told by hand.
import { describe, expect, it } from "vitest";
import {
  KEYED_FEW_MS,
  KEYED_IDLE_MS,
  KEYED_LANE_MS,
  KeyedLanes,
  KeyedMode,
  keysOf,
} from "../../src/relay/keyed-lanes.js";
import type { ClaimedRow } from "../../src/sql/outbox/claim.js";

const row = (key: string | null) => ({ ordering_key: key }) as ClaimedRow;

function setup(concurrency = 2) {
  const clock = { now: 1_000_000 };
  const mode = new KeyedMode(concurrency);
  mode.on = true;
  const lanes = new KeyedLanes(mode, () => clock.now);
  return { clock, mode, lanes };
}

const result = (keys: string[], claimed: number, limit = 100, wakeSeq = 0, woken = false) => ({
  keys,
  claimed,
  limit,
  wakeSeq,
  woken,
});

describe("KeyedMode", () => {
  it("turns on at the first keyed row, and gives each claim its share of the keys", () => {
    const mode = new KeyedMode(4);
    mode.saw([row(null), row(null)]);
    expect(mode.on).toBe(false);
    mode.saw([row(null), row("a")]);
    expect(mode.on).toBe(true);
    expect(mode.keyShare(100)).toBe(25);
    expect(mode.keyShare(10)).toBe(3);
    expect(keysOf([row("a"), row(null), row("b")])).toEqual(["a", "b"]);
  });
});

describe("KeyedLanes", () => {
  it("claims unkeyed while the relay is not keyed, and generally with the key share once it is", () => {
    const { mode, lanes } = setup(4);
    mode.on = false;
    expect(lanes.next(false, 100, 0)).toEqual({ kind: "unkeyed" });
    expect(lanes.next(true, 100, 0)).toEqual({ kind: "general", keyLimit: 25 });
  });

  it("holds the keys of a general claim as a lane, follows them, and leaves the lane when it finds none", () => {
    const { lanes } = setup();
    const general = lanes.next(true, 100, 0);
    expect(lanes.claimed(general as never, result(["a", "b", "c"], 3))).toBe("go-on");
    expect(lanes.lane).toEqual(["a", "b", "c"]);
    const lane = lanes.next(true, 2, 0);
    // A lane claim asks for at most the batch limit of keys.
    expect(lane).toEqual({ kind: "lane", keys: ["a", "b"] });
    expect(lanes.claimed(lane as never, result(["b"], 1))).toBe("go-on");
    expect(lanes.lane).toEqual(["b"]);
    const again = lanes.next(true, 100, 0);
    expect(again).toEqual({ kind: "lane", keys: ["b"] });
    expect(lanes.claimed(again as never, result([], 0))).toBe("go-on");
    expect(lanes.lane).toBeUndefined();
    expect(lanes.next(true, 100, 0).kind).toBe("general");
  });

  it("ends a lane after KEYED_LANE_MS, or when the relay leaves keyed mode", () => {
    const { clock, lanes } = setup();
    lanes.claimed(lanes.next(true, 100, 0) as never, result(["a"], 1));
    clock.now += KEYED_LANE_MS - 1;
    expect(lanes.next(true, 100, 0).kind).toBe("lane");
    clock.now += 1;
    expect(lanes.next(true, 100, 0).kind).toBe("general");

    lanes.claimed(lanes.next(true, 100, 0) as never, result(["a"], 1));
    expect(lanes.next(false, 100, 0)).toEqual({ kind: "unkeyed" });
    expect(lanes.lane).toBeUndefined();
  });

  it("lets a wake-up end a lane, but only KEYED_FEW_MS after the lane began", () => {
    const { clock, lanes } = setup();
    lanes.claimed(lanes.next(true, 100, 7) as never, result(["a"], 1, 100, 7));
    clock.now += KEYED_FEW_MS - 1;
    expect(lanes.next(true, 100, 8).kind).toBe("lane");
    clock.now += 1;
    expect(lanes.next(true, 100, 7).kind).toBe("lane"); // no wake-up since the lane began
    expect(lanes.next(true, 100, 8).kind).toBe("general");
  });

  it("caps the keys at what a short general claim got, for KEYED_FEW_MS; a keyless claim lifts the cap", () => {
    const { clock, lanes } = setup(2);
    const first = lanes.next(true, 100, 0);
    expect(first).toEqual({ kind: "general", keyLimit: 50 });
    expect(lanes.claimed(first as never, result(["a", "b"], 2, 100, 0, true))).toBe("go-on");
    clock.now += KEYED_LANE_MS; // the lane is over
    // The cap lasted KEYED_FEW_MS from the short claim: over too.
    expect(lanes.next(true, 100, 0)).toEqual({ kind: "general", keyLimit: 50 });

    const { clock: c2, lanes: l2 } = setup(2);
    l2.claimed(l2.next(true, 100, 0) as never, result(["a", "b"], 2, 100, 0, true));
    c2.now += 1; // still in the lane: the cap is kept under it
    expect(l2.next(true, 100, 1).kind).toBe("lane");
    l2.claimed({ kind: "lane", keys: ["a", "b"] }, result([], 0));
    expect(l2.next(true, 100, 1)).toEqual({ kind: "general", keyLimit: 2 });
    // A further short claim lowers the cap and keeps the first cap's end.
    l2.claimed({ kind: "general", keyLimit: 2 }, result(["c"], 1, 100, 1, true));
    c2.now += KEYED_FEW_MS - 2;
    l2.claimed({ kind: "lane", keys: ["c"] }, result([], 0));
    expect(l2.next(true, 100, 1)).toEqual({ kind: "general", keyLimit: 1 });
    c2.now += 1;
    expect(l2.next(true, 100, 1)).toEqual({ kind: "general", keyLimit: 50 });

    const { lanes: l3 } = setup(2);
    l3.claimed({ kind: "general", keyLimit: 50 }, result(["a"], 1, 100, 0, true));
    l3.claimed({ kind: "lane", keys: ["a"] }, result([], 0));
    expect(l3.next(true, 100, 0)).toEqual({ kind: "general", keyLimit: 1 });
    l3.claimed({ kind: "general", keyLimit: 1 }, result([], 3, 100, 0, true));
    expect(l3.next(true, 100, 0)).toEqual({ kind: "general", keyLimit: 50 });
  });

  it("ends the loop on an empty general claim with no wake-up, and marks the relay idle", () => {
    const { clock, mode, lanes } = setup();
    const claim = { kind: "general", keyLimit: 50 } as const;
    expect(lanes.claimed(claim, result([], 0, 100, 0, true))).toBe("go-on");
    expect(mode.idleAt).toBe(0);
    expect(lanes.claimed(claim, result([], 0))).toBe("end");
    expect(mode.idleAt).toBe(clock.now);
  });

  it("fills the relay's loops after a full general claim, unless a loop just found nothing", () => {
    const { clock, mode, lanes } = setup();
    const claim = { kind: "general", keyLimit: 50 } as const;
    expect(lanes.claimed(claim, result(["a"], 100))).toBe("fill-loops");
    expect(lanes.claimed(claim, result(["a"], 99))).toBe("go-on");
    mode.idleAt = clock.now - KEYED_IDLE_MS + 1;
    expect(lanes.claimed(claim, result(["a"], 100))).toBe("go-on");
    clock.now += 1;
    expect(lanes.claimed(claim, result(["a"], 100))).toBe("fill-loops");
    // A lane claim never ends the loop nor fills others.
    expect(lanes.claimed({ kind: "lane", keys: ["a"] }, result([], 0))).toBe("go-on");
  });
});
