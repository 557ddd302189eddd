// Waiting in tests: polling a condition or a value until it holds, with a deadline that names what was awaited.
// Deadlines are on the monotonic clock (performance.now): a step of the wall clock (a VM's clock corrected while a
// test waits: CI once saw Date.now() and PostgreSQL's now() move 47 s in 23.5 s of the test's own time) must not end a
// wait early.
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `condition` until it holds; throws `what` (with its last value) after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string | (() => string),
  timeoutMs = 60_000,
  intervalMs = 20,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === "string" ? what : what()}`);
    }
    await sleep(intervalMs);
  }
}

/** `waitUntil` for a condition that needs no name: the test's own line says what it waits for. */
export function until(condition: () => boolean | Promise<boolean>, timeoutMs = 15_000, intervalMs = 20): Promise<void> {
  return waitUntil(condition, () => `a condition: ${condition}`, timeoutMs, intervalMs);
}

/** Polls `read` until `ok` holds for its value and returns that value; throws with the last value after `ms`. */
export async function untilValue<T>(
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  what: string,
  ms = 30_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (performance.now() > deadline) throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(value)})`);
    await sleep(intervalMs);
  }
}
