// Who may publish on the relay's transport at a time.
//
// Batches publish side by side (shared), on one channel. When the broker closes that channel because of one message,
// every batch in flight on it fails, not only the culprit's; so the parts that a batch publishes to find its culprit
// go alone (exclusive): a part that fails then failed because of its own messages, and a lone message that fails is
// the culprit for certain, never a bystander of another batch's culprit.
//
// States: free -> shared (n publishes) -> free; free -> exclusive (one) -> free. A waiting exclusive holder stops new
// shared ones from starting, so that isolation is not starved by a steady stream of batches.
export class PublishLock {
  #shared = 0;
  #exclusive = false;
  #exclusiveWaiting = 0;
  #waiters: Array<() => void> = [];

  async shared<T>(publish: () => Promise<T>): Promise<T> {
    while (this.#exclusive || this.#exclusiveWaiting > 0) await this.#changed();
    this.#shared++;
    try {
      return await publish();
    } finally {
      this.#shared--;
      this.#wake();
    }
  }

  /**
   * Resolves when no exclusive holder runs or waits: a batch waits here before it claims, so that rows do not sit
   * claimed (locked, their transaction idle) while another batch looks for its culprit.
   */
  async whenShared(): Promise<void> {
    while (this.#exclusive || this.#exclusiveWaiting > 0) await this.#changed();
  }

  async exclusive<T>(publish: () => Promise<T>): Promise<T> {
    this.#exclusiveWaiting++;
    try {
      while (this.#exclusive || this.#shared > 0) await this.#changed();
    } finally {
      this.#exclusiveWaiting--;
    }
    this.#exclusive = true;
    try {
      return await publish();
    } finally {
      this.#exclusive = false;
      this.#wake();
    }
  }

  #changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
