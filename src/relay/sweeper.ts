// The sweep path, the fallback: every sweepIntervalMs, the due rows older than sweepMinAgeMs (what the other paths
// missed: a crash after commit, a full in-process queue, a lost NOTIFY, retries whose backoff ended), until a claim
// comes back short. After failures the interval grows (jittered backoff up to 30 s).
//
// Each sweep first asks the table whether it holds keyed rows (keyed mode follows the table: a sweep that finds none
// puts the relay back on claimNext). Unkeyed, it claims after its own position while claims come back full
// (claim-position.ts), like the drain loops; keyed, with claimKeyed, and goes on while it gets a full share of keys.
import { backoffDelay } from "../runtime/backoff.js";
import type { OutboxNames } from "../sql/names.js";
import { beginClaimKeyed, beginClaimSweep } from "../sql/outbox/claim.js";
import { type ClaimLoopGates, claimLoop } from "./claim-loop.js";
import { ClaimPosition } from "./claim-position.js";
import type { CycleRunner } from "./cycle-runner.js";
import type { KeyedMode } from "./keyed-lanes.js";

export interface SweeperDeps {
  gates: ClaimLoopGates;
  cycles: CycleRunner;
  names: OutboxNames;
  keyed: KeyedMode;
  /** Whether the table holds keyed rows. */
  hasKeyedRows: () => Promise<boolean>;
  /** How many drain loops run now. */
  drainLoops: () => number;
}

/** Runs the sweeper until the relay stops. */
export function runSweeper(deps: SweeperDeps): Promise<void> {
  const { gates, cycles, names, keyed: mode } = deps;
  const o = cycles.options;
  const position = new ClaimPosition();
  return claimLoop(gates, {
    pauseMs: (failures) => (failures > 0 ? backoffDelay(failures, o.sweepIntervalMs, 30_000) : o.sweepIntervalMs),
    failed: () => position.reset(),
    round: async () => {
      mode.on = await deps.hasKeyedRows();
      // Every drain loop of a keyed relay running: they hold lanes and look for other keys as their lanes end, so a
      // keyed sweep would only find what they find, at the price of a general keyed claim (the most costly one, and
      // empty while every key is in flight: a window walk and a key scan for nothing).
      if (mode.on && deps.drainLoops() >= o.concurrency) return "skipped";
      while (!gates.halt.aborted) {
        const keyed = mode.on;
        const after = keyed ? undefined : position.next();
        const limit = gates.limit.value;
        const keyShare = mode.keyShare(limit);
        const { claimed } = await cycles.run({
          path: "sweep",
          sql: keyed
            ? beginClaimKeyed(names, limit, keyShare, o.keyAfterDeadLetter, o.sweepMinAgeMs)
            : beginClaimSweep(names, limit, o.sweepMinAgeMs, after, o.keyAfterDeadLetter),
          onClaimed: (rows) => {
            mode.saw(rows);
            if (keyed) position.reset();
            else position.claimed(rows, rows.length === limit);
          },
        });
        // A keyed claim is short by design (its share of keys): the sweep goes on while it gets a full share.
        if (keyed ? claimed < keyShare : claimed < limit && after === undefined) break;
      }
      return "claimed";
    },
  });
}
