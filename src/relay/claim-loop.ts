// The skeleton every claiming loop of the relay shares (the drain loops and the sweeper): pause, wait for the broker,
// wait out the batch limit's cool-down, claim, and back off after a failure.
//
//   pause(failures)   the loop's own wait before a round: the sweep interval, or a backoff after failures
//   broker            while the broker is disconnected or blocked no loop claims: rows stay where they are, and the
//                     broker's return wakes the drain loops (broker-gate.ts)
//   cool-down         after a timeout lowered the batch limit, claims pause for one publish timeout (batch-limit.ts)
//   round             the loop's claims; "end" ends the loop, "claimed" resets the failure count, "skipped" leaves
//                     it; a rejection (already logged by the cycle runner) counts one more failure
//
// Every wait ends as soon as stop() begins (the halt signal), and the loop ends with it.
import { sleep } from "../runtime/backoff.js";
import type { BatchLimit } from "./batch-limit.js";
import type { BrokerGate } from "./broker-gate.js";

export type RoundOutcome = "claimed" | "skipped" | "end";

export interface ClaimLoopGates {
  halt: AbortSignal;
  broker: BrokerGate;
  limit: BatchLimit;
}

export interface ClaimLoopSteps {
  /** How long to wait before the next round, after `failures` failed rounds in a row. */
  pauseMs(failures: number): number;
  round(): Promise<RoundOutcome>;
  /** A round failed (its rows are back in the table). */
  failed(): void;
}

export async function claimLoop(gates: ClaimLoopGates, steps: ClaimLoopSteps): Promise<void> {
  const { halt, broker, limit } = gates;
  let failures = 0;
  while (!halt.aborted) {
    const pause = steps.pauseMs(failures);
    if (pause > 0) await sleep(pause, halt);
    await broker.wait();
    const cooldown = limit.cooldownMs;
    if (cooldown > 0) await sleep(cooldown, halt);
    if (halt.aborted) return;
    try {
      const outcome = await steps.round();
      if (outcome === "end") return;
      if (outcome === "claimed") failures = 0;
    } catch {
      steps.failed();
      failures++;
    }
  }
}
