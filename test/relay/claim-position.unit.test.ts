import { describe, expect, it } from "vitest";
import { ClaimPosition, RESCAN_MS } from "../../src/relay/claim-position.js";
import type { ClaimedRow } from "../../src/sql/outbox/claim.js";

const row = (id: string, availableAt: number) => ({ id, available_at: availableAt }) as ClaimedRow;

describe("ClaimPosition", () => {
  it("starts from the start, keeps the highest row while claims come back full, and resets on a short one", () => {
    const now = 0;
    const p = new ClaimPosition(() => now);
    expect(p.next()).toBeUndefined();
    p.claimed([row("9", 100), row("12", 100), row("3", 50)], true);
    expect(p.next()).toEqual({ availableAt: 100, id: "12" });
    p.claimed([row("2", 101)], true);
    expect(p.next()).toEqual({ availableAt: 101, id: "2" });
    // A lower row (another loop's older batch) never moves the position back.
    p.claimed([row("99", 100)], true);
    expect(p.next()).toEqual({ availableAt: 101, id: "2" });
    p.claimed([row("5", 102)], false);
    expect(p.next()).toBeUndefined();
  });

  it("goes back to the start after a failed batch, and at least every RESCAN_MS while draining", () => {
    let now = 0;
    const p = new ClaimPosition(() => now);
    p.next();
    p.claimed([row("1", 1)], true);
    p.reset();
    expect(p.next()).toBeUndefined();
    p.claimed([row("1", 1)], true);
    now += RESCAN_MS - 1;
    expect(p.next()).toEqual({ availableAt: 1, id: "1" });
    now += 1;
    expect(p.next()).toBeUndefined();
    p.claimed([row("2", 2)], true);
    expect(p.next()).toEqual({ availableAt: 2, id: "2" });
  });
});
