/** Calls each listener with the event; a listener that throws can never break the part that emits. */
export function safeEmit<E>(listeners: Iterable<(event: E) => void>, event: E): void {
  for (const listener of listeners) {
    try {
      listener(event);
    } catch {
      // a listener's failure is its own
    }
  }
}
