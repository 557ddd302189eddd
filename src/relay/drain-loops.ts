// The listen path: up to `concurrency` drain loops, started by a NOTIFY from a writer in any process, a broker
// reconnect, or start(), each claiming the oldest due rows until a claim comes back short and no wake-up came
// meanwhile.
//
// Unkeyed relays claim with claimNext. While claims come back full, the loops claim after the last row they took
// instead of from the start (claim-position.ts): rows just deleted and not yet vacuumed are not walked again. A
// short claim after a position resets it: the loop looks once more from the start before it ends.
// Keyed relays (keyed-lanes.ts) claim with claimKeyed, or claimKeyHeads while a loop holds a lane, from the start of
// the due rows every time (a key's next row is behind any position); keyed-lanes.ts decides when a loop ends.
import { backoffDelay } from "../runtime/backoff.js";
import type { OutboxNames } from "../sql/names.js";
import { beginClaimKeyed, beginClaimKeyHeads, beginClaimNext } from "../sql/outbox/claim.js";
import { type ClaimLoopGates, claimLoop, type RoundOutcome } from "./claim-loop.js";
import { ClaimPosition } from "./claim-position.js";
import type { CycleRunner } from "./cycle-runner.js";
import { KeyedLanes, type KeyedMode, keysOf } from "./keyed-lanes.js";

export interface DrainLoopsDeps {
  gates: ClaimLoopGates;
  cycles: CycleRunner;
  names: OutboxNames;
  keyed: KeyedMode;
  /** Whether the relay runs: loops start only then. */
  running: () => boolean;
}

export class DrainLoops {
  readonly #loops = new Set<Promise<void>>();
  /** Where the drain loops' next claims start (shared by the loops). */
  readonly #position = new ClaimPosition();
  /** Bumped by every wake-up: a loop that sees it changed goes on past a short claim. */
  #wakeSeq = 0;
  /** Bumped when the queue path or the sweeper published keyed rows (see keyedWake). */
  #keyedSeq = 0;

  constructor(private readonly deps: DrainLoopsDeps) {}

  /** How many loops run. */
  get size(): number {
    return this.#loops.size;
  }

  /** Resolves when every loop running now has ended. */
  settled(): Promise<unknown> {
    return Promise.all(this.#loops);
  }

  /** Wakes the drain loops, as a NOTIFY does: starts loops up to `concurrency`. */
  wake(): void {
    if (!this.deps.running()) return;
    this.#wakeSeq++;
    this.#fill();
  }

  /**
   * After the queue path or the sweeper published keyed rows: the keys' next rows may be claimed now. A drain loop
   * takes them: one starts if none runs, and the running ones go on past their next short claim. (A drain loop that
   * published keyed rows goes on by itself. Waking every loop would make them race for the same few rows: the losers
   * find them taken and walk every blocked row for nothing.)
   */
  keyedWake(): void {
    if (!this.deps.running()) return;
    this.#keyedSeq++;
    if (this.#loops.size === 0) this.#start();
  }

  /** Starts drain loops up to `concurrency`. */
  #fill(): void {
    if (!this.deps.running()) return;
    while (this.#loops.size < this.deps.cycles.options.concurrency) this.#start();
  }

  #start(): void {
    const loop: Promise<void> = this.#drain().finally(() => this.#loops.delete(loop));
    this.#loops.add(loop);
  }

  /** One drain loop (see the top of this module). */
  #drain(): Promise<void> {
    const { gates, cycles, names, keyed: mode } = this.deps;
    const lanes = new KeyedLanes(mode);
    const position = this.#position;
    return claimLoop(gates, {
      pauseMs: (failures) => (failures > 0 ? Math.max(backoffDelay(failures, 100, 5_000), gates.limit.cooldownMs) : 0),
      failed: () => position.reset(),
      round: async (): Promise<RoundOutcome> => {
        const o = cycles.options;
        const wakeSeq = this.#wakeSeq;
        const keyedSeq = this.#keyedSeq;
        const keyed = mode.on;
        const after = keyed ? undefined : position.next();
        const limit = gates.limit.value;
        const next = lanes.next(keyed, limit, wakeSeq);
        let keys: string[] = [];
        const { claimed, keysMoved } = await cycles.run({
          path: "listen",
          sql:
            next.kind === "lane"
              ? beginClaimKeyHeads(names, next.keys, o.keyAfterDeadLetter)
              : next.kind === "general"
                ? beginClaimKeyed(names, limit, next.keyLimit, o.keyAfterDeadLetter)
                : beginClaimNext(names, limit, after, o.keyAfterDeadLetter),
          onClaimed: (rows) => {
            mode.saw(rows);
            keys = keysOf(rows);
            if (keyed) position.reset();
            else position.claimed(rows, rows.length === limit);
          },
        });
        // Keyed rows it published (or the other paths did) let the keys' next rows be claimed: it goes on for those.
        const woken = wakeSeq !== this.#wakeSeq || keyedSeq !== this.#keyedSeq || keysMoved;
        if (next.kind !== "unkeyed") {
          const verdict = lanes.claimed(next, { keys, claimed, limit, wakeSeq, woken });
          if (verdict === "end") return "end";
          if (verdict === "fill-loops") this.#fill();
          return "claimed";
        }
        return claimed < limit && after === undefined && !woken ? "end" : "claimed";
      },
    });
  }
}
