// The after-commit wake-up of relays in other processes: at most one NOTIFY per `intervalMs` per client, and one
// after every commit that wrote messages.
//
// States:
//   quiet      no NOTIFY in the last intervalMs. A commit sends one at once (leading edge) -> cooling.
//   cooling    a NOTIFY was sent less than intervalMs ago. A commit only marks -> cooling + pending.
//   pending    at the end of the interval, one NOTIFY for all the commits marked (trailing edge) -> cooling;
//              without a mark -> quiet.
// Every commit is followed by a NOTIFY sent after it, at once or within intervalMs. A relay claims after it receives
// the notification, so its claim sees the rows of every commit that came before the NOTIFY was sent: nothing waits
// for the sweeper, even when the relay was idle. A commit that returns while a NOTIFY is still in flight falls in
// the interval, so it is covered by the next one.
//
// Why not NOTIFY in the writing transaction (notify: "in-transaction"): PostgreSQL serialises the commits of all
// notifying transactions on one lock, so every outbox write queues behind every other one (the cost is in
// docs/performance.md). Here that lock is taken at most 1000 / intervalMs times a second per client, outside the
// writers' transactions. The cost: if the process dies between a COMMIT and its NOTIFY, relays in other processes find the rows
// with their sweeper (as they do when an in-process hand-off is lost).

export class Notifier {
  #timer: NodeJS.Timeout | undefined;
  #pending = false;
  #failing = false;

  /**
   * @param send sends the NOTIFY. A failure stops nothing (the relays' sweepers publish what it would have announced,
   *   within their sweepMinAgeMs + sweepIntervalMs), but it is said once, as a process warning, until a NOTIFY
   *   succeeds again.
   */
  constructor(
    private readonly send: () => Promise<unknown>,
    private readonly intervalMs: number,
  ) {}

  /** A transaction that wrote messages has committed. */
  committed(): void {
    if (this.#timer !== undefined) {
      this.#pending = true;
      return;
    }
    this.#fire();
  }

  #fire(): void {
    this.#pending = false;
    this.send().then(
      () => {
        this.#failing = false;
      },
      (error: unknown) => {
        if (this.#failing) return;
        this.#failing = true;
        process.emitWarning(
          `prisma-outbox: the NOTIFY that wakes relays in other processes failed; they publish with their sweeper ` +
            `until it works again: ${describe(error)}`,
          { code: "PRISMA_OUTBOX_NOTIFY_FAILED" },
        );
      },
    );
    // Not unref'd: a process that ends right after a write still sends the trailing NOTIFY first.
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#pending) this.#fire();
    }, this.intervalMs);
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return [error.name, code, error.message].filter((part) => part !== undefined && part !== "").join(": ");
}
