// The end of a claim's transaction. BEGIN rides with the claim itself (claim.ts: one round trip); COMMIT and
// ROLLBACK are their own statements because what comes between (the broker's confirms) decides which one runs.

/**
 * Makes the batch final: the claimed rows deleted, the refused ones put back or dead-lettered. Sent only after every
 * confirm arrived, so a crash before it leaves every row in place (at-least-once). Also ends a claim that found no
 * rows (COMMIT of an empty transaction costs the same as ROLLBACK and says that nothing failed).
 */
export const COMMIT_SQL = "COMMIT";

/**
 * Gives every claimed row back unchanged when the batch failed as a whole (connection lost, timeout, stop deadline).
 * When even this fails, the connection is broken and must not go back to the pool.
 */
export const ROLLBACK_SQL = "ROLLBACK";
