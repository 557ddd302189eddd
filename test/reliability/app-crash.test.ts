// Scenario 2: the app dies after COMMIT and before the in-process hand-off (fixtures/app-dies-after-commit.ts).
// Its messages are committed but no relay was told: a worker that does not LISTEN finds them with its sweeper,
// within sweepMinAgeMs + sweepIntervalMs of the commit (plus slack). The apps write only once all of them are up
// (a go on their stdin), so that the measured delays do not include their start-ups.
import { expect, it } from "vitest";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import * as h from "./harness.js";

const { amqpUrl, url, pool, defer } = await h.useScenario();

const APPS = h.size(2, 8);
const PER_APP = h.size(250, 1_000);
const SWEEP_INTERVAL_MS = 500;
const SWEEP_MIN_AGE_MS = 2_000;
/** Generous: another engineer's tests may share the two cores. */
const SLACK_MS = 3_000;

it(
  `${APPS} apps SIGKILLed right after COMMIT: the sweeper publishes their messages within sweepMinAgeMs + sweepIntervalMs`,
  async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.appcrash"));
    defer(() => consumer.close());
    // Started first, so that its start-up drain finds nothing: with LISTEN off only the sweeper can find the rows.
    const worker = await h.startWorker({
      databaseUrl: url,
      amqpUrl,
      args: ["--no-listen"],
      env: {
        OUTBOX_SWEEP_INTERVAL_MS: String(SWEEP_INTERVAL_MS),
        OUTBOX_SWEEP_MIN_AGE_MS: String(SWEEP_MIN_AGE_MS),
      },
    });

    const apps = Array.from({ length: APPS }, (_, i) => {
      const mode = i % 2 === 0 ? "transaction" : "enqueue";
      return {
        mode,
        proc: h.spawnTsx(
          `app-${i}-${mode}`,
          "test/reliability/fixtures/app-dies-after-commit.ts",
          [url, consumer.exchange, mode, String(PER_APP)],
          {},
          { stdin: true },
        ),
      };
    });
    // Every app started and connected, then all write at once: the delays measured below (from just before each
    // write) do not include another app's start-up, which loads the two cores for seconds.
    await Promise.all(apps.map(({ proc }) => proc.waitForLine(/^\{/, 60_000)));
    for (const { proc } of apps) proc.writeLine("go");
    const ids: string[] = [];
    for (const { mode, proc } of apps) {
      const exit = await proc.exited;
      expect(exit.signal, proc.log()).toBe("SIGKILL");
      expect(proc.stdout).toContain("committing");
      expect(proc.stdout).not.toContain("survived the hand-off");
      const written = JSON.parse(proc.stdout[0]!) as { orderNumber: string; ids: string[] };
      ids.push(...written.ids);
      // The kill came after COMMIT: every message is in the outbox (or, if the sweeper already took it, delivered;
      // the broker confirmed it before the relay's COMMIT, and its delivery to the consumer may lag a little).
      const rows = await pool.query<{ id: string }>(
        "SELECT message_id::text AS id FROM outbox_message WHERE message_id = ANY($1::uuid[])",
        [written.ids],
      );
      const inOutbox = new Set(rows.rows.map((r) => r.id));
      await h.waitUntil(
        () => written.ids.every((id) => inOutbox.has(id) || consumer.counts.has(id)),
        () => `${proc.name}'s messages: some neither in the outbox nor delivered`,
        5_000,
      );
      if (mode === "transaction") {
        const order = await pool.query('SELECT amount FROM "Order" WHERE number = $1', [written.orderNumber]);
        expect(order.rows).toEqual([{ amount: PER_APP }]);
      }
    }

    await h.waitForDelivery(pool, consumer, ids, 60_000);
    expect(worker.running).toBe(true);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);

    const bound = SWEEP_MIN_AGE_MS + SWEEP_INTERVAL_MS;
    const result = h.computeRow(
      "2. app SIGKILLed after COMMIT, before hand-off",
      ids,
      consumer,
      `${APPS} apps; sweeper only; bound ${bound} ms + ${SLACK_MS} slack`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
    const d = h.delays(ids, consumer);
    // Not before sweepMinAgeMs (writtenAt precedes created_at, the transaction's start): the sweeper took them...
    expect(Math.min(...d)).toBeGreaterThanOrEqual(SWEEP_MIN_AGE_MS - 50);
    // ...and within sweepMinAgeMs + sweepIntervalMs of the commit (writtenAt precedes the commit too).
    expect(result.maxDelayMs).toBeLessThanOrEqual(bound + SLACK_MS);
  },
  h.TEST_TIMEOUT,
);
