// Type-checked by scripts/fresh-app-testing.sh with `tsc --noEmit` under moduleResolution node16 and bundler: the
// subpath's declarations resolve through the package's `exports` (an unresolved import would be an error, and `any`
// would let the @ts-expect-error lines below compile, which fails the check).
import {
  type DeliveryOutcome,
  type HandlerOutcome,
  MemoryBroker,
  OutboxExpectationError,
  type OutboxHarness,
  startOutboxHarness,
  TestClock,
} from "prisma-outbox/testing";

export async function typed(databaseUrl: string): Promise<OutboxHarness> {
  const clock: TestClock = new TestClock();
  const sending = await startOutboxHarness({ databaseUrl, broker: new MemoryBroker(), clock });
  // @ts-expect-error: a mark is an object the harness makes, not a number
  await sending.expectNone({ since: 3 });
  return sending;
}

export const status: HandlerOutcome["status"] = "processed";
// @ts-expect-error: "done" is not a handler's status
export const wrong: HandlerOutcome["status"] = "done";
export const duplicate = (outcome: DeliveryOutcome): boolean => outcome.duplicate;
export const isExpectation = (error: unknown): boolean => error instanceof OutboxExpectationError;
