// The queue path, the fast one: ids the extension handed over after COMMIT in this process (handoff/outbox-queue.ts),
// claimed by id at once, in parts of the batch limit. It claims by id in keyed mode too.
import type { OutboxNames } from "../sql/names.js";
import { beginClaimByIds } from "../sql/outbox/claim.js";
import type { ClaimLoopGates } from "./claim-loop.js";
import type { CycleRunner } from "./cycle-runner.js";
import type { KeyedMode } from "./keyed-lanes.js";

export interface QueuePathDeps {
  gates: ClaimLoopGates;
  cycles: CycleRunner;
  names: OutboxNames;
  keyed: KeyedMode;
}

/** Publishes the rows of `ids` still in the table; failures are logged by the cycle runner and left to the sweeper. */
export async function publishQueued(deps: QueuePathDeps, ids: string[]): Promise<void> {
  const { gates, cycles, names, keyed } = deps;
  // With the broker away, leave the ids: its return wakes the drain loops, which take the rows.
  for (let start = 0; start < ids.length; start += gates.limit.value) {
    if (!gates.broker.ready() || gates.halt.aborted) return;
    const part = ids.slice(start, start + gates.limit.value);
    await cycles
      .run({
        path: "queue",
        sql: beginClaimByIds(names, part, cycles.options.keyAfterDeadLetter),
        onClaimed: (rows) => keyed.saw(rows),
      })
      .catch(() => {});
  }
}
