// The receiver's side of the processor: where the rows the receiver stores go. The processor implements it; the
// receiver knows nothing else of it.
//   before the INSERT: reserve(n) -> room granted for rows the INSERT itself leases (claimed there: no claim round trip
//     between a delivery's COMMIT and its handler)
//   after the COMMIT: adopt(leased rows, granted) -> the leased rows join the processor's buffer, the room is given
//     back; handoff(ids) -> the other new pending rows, claimed by id at once
import type { ClaimedInboxRow } from "../sql/inbox/claim.js";

export interface ReceivedRows {
  /** The lease of a row leased in the INSERT (the processor's claim lease). */
  readonly leaseMs: number;
  /** How many of the next INSERT's rows the processor can take; none while it stops. */
  reserve(wanted: number): number;
  /**
   * The rows the INSERT leased, after COMMIT (fewer than reserved when some were duplicates, none when it gave up),
   * and the count reserved for it. Called exactly once per reserve().
   */
  adopt(rows: ClaimedInboxRow[], reserved: number): void;
  /** Ids of new pending rows not leased in the INSERT, after COMMIT: claimed at once. */
  handoff(ids: readonly string[]): void;
}
