// What the relay knows of the broker, from the transport's events: whether it can take messages now, and a gate the
// drain loops and the sweeper wait at while it cannot (disconnected, or blocked by a resource alarm), so that they
// neither spin nor fail batch after batch (claim-loop.ts). Kept apart: the state, its waiters and the logging of each
// change are one job.
import type { Logger } from "../runtime/logger.js";
import type { TransportEvent } from "../transport/transport.js";

export type BrokerState = "unknown" | "ready" | "down" | "blocked";

export class BrokerGate {
  /** What the transport's events said last: unknown until the first one. */
  #state: BrokerState = "unknown";
  #waiters: Array<() => void> = [];

  /**
   * @param halt ends every wait at once (the relay is stopping).
   * @param onReady called when the broker becomes ready again, to publish what piled up while it was away.
   */
  constructor(
    private readonly halt: AbortSignal,
    private readonly onReady: () => void,
  ) {}

  get state(): BrokerState {
    return this.#state;
  }

  ready(): boolean {
    return this.#state === "ready";
  }

  /** A transport that says nothing about its state is taken as ready once started. */
  started(): void {
    if (this.#state === "unknown") this.#state = "ready";
  }

  /** Resolves when the broker can take messages (or the relay stops); undefined when it can now. */
  wait(): Promise<void> | undefined {
    if (this.ready() || this.halt.aborted) return undefined;
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Lets every waiter go (the relay is stopping, or the broker is back). */
  release(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Follows one transport event; `running`: whether a "connected" is a reconnection worth a line. */
  observe(event: TransportEvent, log: Logger, running: boolean): void {
    switch (event.type) {
      case "connected":
        if (running) log.info("broker reconnected");
        this.#set("ready");
        break;
      case "unblocked":
        log.info("broker unblocked");
        this.#set("ready");
        break;
      case "disconnected":
        log.warn("broker connection lost", { error: event.error?.message });
        this.#set("down");
        break;
      case "blocked":
        log.warn("broker blocked publishing (resource alarm)", { reason: event.reason });
        this.#set("blocked");
        break;
      case "reconnecting":
        log.warn("reconnecting to the broker", {
          attempt: event.attempt,
          delayMs: event.delayMs,
          error: event.error.message,
        });
        break;
    }
  }

  #set(state: "ready" | "down" | "blocked"): void {
    this.#state = state;
    if (state !== "ready") return;
    this.release();
    this.onReady();
  }
}
