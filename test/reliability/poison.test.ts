// Scenario 6: poison and unroutable messages mixed into a stream. The consumer binds only `ok.#`, so routing keys
// outside it are returned unroutable; some messages go to an exchange that does not exist; a few carry headers too
// large for an AMQP frame's field table (amqplib refuses to encode them). Each is retried, then dead-lettered with its
// last error after OUTBOX_MAX_ATTEMPTS; everything else is delivered, and nothing waits behind them.
import { expect, it } from "vitest";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import * as h from "./harness.js";

const { amqpUrl, url, pool, prisma, defer } = await h.useScenario();

const MESSAGES = h.size(3_000, 20_000);
const MAX_ATTEMPTS = 3;

type Kind = "ok" | "unroutable" | "no-exchange" | "huge-headers";
/** Every 50th message is unroutable, every 300th goes to a missing exchange, every 700th has huge headers. */
function kindOf(i: number): Kind {
  if (i % 700 === 350) return "huge-headers";
  if (i % 300 === 150) return "no-exchange";
  if (i % 50 === 25) return "unroutable";
  return "ok";
}

it(
  `${MESSAGES} messages with unroutable, missing-exchange and unencodable ones mixed in: those dead-lettered after ${MAX_ATTEMPTS} attempts, the rest delivered`,
  async () => {
    // Binds ok.# only.
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.poison"), "ok.#");
    defer(() => consumer.close());
    const missingExchange = uniqueName("rel.missing");
    const worker = await h.startWorker({
      databaseUrl: url,
      amqpUrl,
      env: {
        ...h.fastRetries(MAX_ATTEMPTS),
        OUTBOX_BATCH_SIZE: "100",
      },
    });

    const okIds: string[] = [];
    const poison = new Map<string, Kind>();
    for (let start = 0; start < MESSAGES; start += 100) {
      const writtenAt = Date.now();
      const kinds = Array.from({ length: Math.min(100, MESSAGES - start) }, (_, j) => kindOf(start + j));
      const written = await prisma.$enqueue(
        kinds.map((kind, j) => {
          const i = start + j;
          const payload = { i, writtenAt };
          if (kind === "unroutable") return { exchange: consumer.exchange, routingKey: `nowhere.${i}`, payload };
          if (kind === "no-exchange") return { exchange: missingExchange, routingKey: `ok.${i}`, payload };
          if (kind === "huge-headers") {
            // Valid for the outbox (headers have no size limit there), too large for amqplib's 64 KiB field table.
            return {
              exchange: consumer.exchange,
              routingKey: `ok.${i}`,
              payload,
              headers: { blob: "x".repeat(70_000) },
            };
          }
          return { exchange: consumer.exchange, routingKey: `ok.${i}`, payload };
        }),
      );
      written.forEach((id, j) => {
        const kind = kinds[j]!;
        if (kind === "ok") okIds.push(id);
        else poison.set(id, kind);
      });
    }

    // Nothing blocked: every good message arrives (the poison ones are retried and dead-lettered beside them).
    await h.waitForDelivery(pool, consumer, okIds, 60_000, 200);
    const okDelays = h.delays(okIds, consumer).sort((a, b) => a - b);
    const deadLetters = () => h.deadLetterRows(pool);
    await h.waitUntil(
      async () => (await deadLetters()).length === poison.size,
      "every poison message dead-lettered",
      60_000,
    );
    expect(await h.outboxCount(pool)).toBe(0);
    expect(worker.running).toBe(true);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);

    const dead = await deadLetters();
    expect(new Set(dead.map((d) => d.message_id))).toEqual(new Set(poison.keys()));
    const patterns: Record<Exclude<Kind, "ok">, RegExp> = {
      unroutable: /unroutable.*NO_ROUTE/,
      "no-exchange": /does not exist \(NOT_FOUND 404\)/,
      "huge-headers": /could not be sent/,
    };
    for (const d of dead) {
      const kind = poison.get(d.message_id) as Exclude<Kind, "ok">;
      expect(d.attempts, `${kind} ${d.message_id}`).toBe(MAX_ATTEMPTS);
      expect(d.last_error, `${kind} ${d.message_id}`).toMatch(patterns[kind]);
    }
    expect(worker.lines.filter((l) => l.includes("message dead-lettered")).length).toBe(poison.size);
    // None of them reached the consumer (the missing-exchange ones had ok.* keys, the huge ones too).
    expect([...poison.keys()].filter((id) => consumer.counts.has(id))).toEqual([]);

    const counts = [...poison.values()].reduce<Record<string, number>>((acc, k) => {
      acc[k] = (acc[k] ?? 0) + 1;
      return acc;
    }, {});
    const result = h.computeRow(
      "6. poison and unroutable mixed in",
      okIds,
      consumer,
      `dead-lettered: ${Object.entries(counts)
        .map(([k, n]) => `${n} ${k}`)
        .join(", ")}; ok p99 ${Math.round(okDelays[Math.floor(okDelays.length * 0.99)] ?? 0)} ms`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
    // Generous (shared cores); a relay stuck behind a poison message would take minutes, or forever.
    expect(result.maxDelayMs).toBeLessThan(15_000);
  },
  h.TEST_TIMEOUT,
);
