// Inbox scenario I8: deliveries PostgreSQL cannot store, published raw (amqplib, as any publisher could) among good
// ones to the queue of an inbox worker process (the bundled CLI with fixtures/inbox-handlers.ts): a NUL character in
// the messageId, the type, the correlationId, the x-ordering-key header and another header, a body of 30,000 nested
// arrays (V8 parses it, PostgreSQL's json parser does not: 54001), and a body over maxPayloadBytes (the default,
// 1 MiB). Each culprit ends dead with its reason; every good message is handled once, within seconds.
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import { expect, it } from "vitest";
import * as h from "./harness.js";
import * as ih from "./inbox-harness.js";

const { amqpUrl, url, pool, defer } = await h.useScenario();

const GOOD = h.size(2_000, 20_000);

type Culprit = { name: string; body: Buffer; options: amqp.Options.Publish; reason: RegExp };

function culprits(): Culprit[] {
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  const id = () => randomUUID();
  return [
    {
      name: "NUL in messageId",
      body: json({ c: 1 }),
      options: { messageId: `${id()}\u0000` },
      reason: /messageId .* NUL/,
    },
    { name: "NUL in type", body: json({ c: 2 }), options: { messageId: id(), type: "t\u0000" }, reason: /type .* NUL/ },
    {
      name: "NUL in correlationId",
      body: json({ c: 3 }),
      options: { messageId: id(), correlationId: "c\u0000" },
      reason: /correlationId .* NUL/,
    },
    {
      name: "NUL in x-ordering-key",
      body: json({ c: 4 }),
      options: { messageId: id(), headers: { "x-ordering-key": "k\u0000" } },
      reason: /header "x-ordering-key" contains a NUL/,
    },
    {
      name: "NUL in another header",
      body: json({ c: 5 }),
      options: { messageId: id(), headers: { "x-source": "s\u0000" } },
      reason: /header "x-source" contains a NUL/,
    },
    {
      name: "30,000 nested arrays",
      body: Buffer.from(`${"[".repeat(30_000)}${"]".repeat(30_000)}`),
      options: { messageId: id() },
      reason: /nested deeper/,
    },
    {
      name: "body over maxPayloadBytes",
      body: json({ big: "x".repeat(2 * 1_048_576) }),
      options: { messageId: id() },
      reason: /above the limit of maxPayloadBytes/,
    },
  ];
}

it(
  `I8. ${GOOD} good messages with 7 deliveries PostgreSQL cannot store mixed in: culprits dead with their reason, the others handled`,
  async () => {
    await ih.resetInboxTables(pool);
    const publisher = await ih.startPublisher(amqpUrl, "rel.inbox.bad");
    defer(() => publisher.close());
    const connection = await amqp.connect(amqpUrl);
    defer(() => connection.close().catch(() => {}));
    const channel = await connection.createConfirmChannel();
    const worker = await ih.startInbox({ ...publisher, databaseUrl: url, amqpUrl });

    const bad = culprits();
    // Spread over the stream, so that each lands in a receive batch with good deliveries.
    const at = new Map(bad.map((c, k) => [Math.floor(((k + 1) * GOOD) / (bad.length + 1)), c]));
    const ids: string[] = [];
    const writtenAt = Date.now();
    for (let i = 0; i < GOOD; i++) {
      const culprit = at.get(i);
      if (culprit)
        channel.publish(publisher.exchange, "inbox.msg", culprit.body, { ...culprit.options, persistent: true });
      const messageId = randomUUID();
      ids.push(messageId);
      const body = Buffer.from(JSON.stringify({ i, writtenAt }));
      if (!channel.publish(publisher.exchange, "inbox.msg", body, { messageId, persistent: true })) {
        await new Promise((resolve) => channel.once("drain", resolve));
      }
    }
    await channel.waitForConfirms();

    await ih.waitForEffects(pool, ids, { timeoutMs: 60_000, dead: bad.length });
    const stats = ih.inboxStats(worker);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);
    expect(await ih.inboxStatuses(pool)).toEqual({ processed: GOOD, dead: bad.length });
    const { rows } = await pool.query<{ message_id: string | null; last_error: string; body: Buffer | null }>(
      "SELECT message_id, last_error, body FROM inbox_message WHERE status = 'dead' ORDER BY id",
    );
    expect(rows).toHaveLength(bad.length);
    // Two batches in flight may draw their ids interleaved: each culprit is found by its reason.
    const rowOf = (c: Culprit) => {
      const found = rows.filter((r) => c.reason.test(r.last_error));
      expect(found, c.name).toHaveLength(1);
      return found[0]!;
    };
    expect(rowOf(bad[0]!).message_id).toBeNull(); // a NUL cannot be a key
    for (const c of bad.slice(1)) expect(rowOf(c).message_id, c.name).toBe(c.options.messageId);
    expect(rowOf(bad[5]!).body).toEqual(bad[5]!.body); // the deep body's bytes kept
    expect(rowOf(bad[6]!).body).toBeNull(); // the oversized body let go
    expect(await publisher.ready()).toBe(0);

    const effects = await ih.readEffects(pool);
    const result = ih.computeInboxRow(
      "I8. deliveries PostgreSQL cannot store mixed in",
      ids,
      effects,
      `7 culprits (NUL in messageId, type, correlationId, x-ordering-key, a header; 30,000-deep JSON; 2 MiB body) dead with their reason; ${stats.received} deliveries received`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
    expect(result.maxDelayMs).toBeLessThan(30_000);
  },
  h.TEST_TIMEOUT,
);
