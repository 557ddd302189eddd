// The insert's defaults, against PostgreSQL: a new message is due as soon as its transaction has committed, however
// soon the relay's claim starts (the in-process hand-off claims within a millisecond of the insert). Both unkeyed
// statements (the unnest for any number of messages, the VALUES row for one) store a message alike.
import { afterAll, describe, expect, it } from "vitest";
import { type NormalizedMessage, normalizeMessage } from "../../src/message/message.js";
import { outboxNames } from "../../src/sql/names.js";
import {
  insertMessagesParams,
  insertMessagesSql,
  insertSingleMessageParams,
  insertSingleMessageSql,
} from "../../src/sql/outbox/insert.js";
import { newPool, useTestDatabase } from "../support/prisma.js";

const url = await useTestDatabase();
const pool = newPool(url, 1);
afterAll(() => pool.end());

type Write = (message: NormalizedMessage, notify?: boolean) => [string, unknown[]];
const statements: Array<[string, Write]> = [
  ["insertMessagesSql", (m, notify = false) => [insertMessagesSql(outboxNames(), notify), insertMessagesParams([m])]],
  [
    "insertSingleMessageSql",
    (m, notify = false) => [insertSingleMessageSql(outboxNames(), notify), insertSingleMessageParams(m)],
  ],
];

/** A statement with its parameters written in as literals, to run in one simple query with the statements around it. */
function inline(sql: string, params: unknown[]): string {
  const quote = (v: string) => `'${v.replaceAll("'", "''")}'`;
  const element = (v: unknown) =>
    v === null ? "NULL" : `"${String(v).replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
  const literal = (v: unknown) =>
    v === null || v === undefined
      ? "NULL"
      : Array.isArray(v)
        ? quote(`{${v.map(element).join(",")}}`)
        : quote(String(v));
  return sql.replace(/\$(\d+)/g, (_, n: string) => literal(params[Number(n) - 1]));
}

describe.each(statements)("%s", (_name, write) => {
  it("writes available_at truncated to the column's milliseconds, never rounded past the clock at the insert", async () => {
    // The SELECT runs microseconds after the INSERT, in the same query: a value rounded up (half of them, without the
    // truncation) is still ahead of clock_timestamp() there. (Through a round trip, as below, only on a fast machine.)
    let ahead = 0;
    for (let i = 0; i < 200; i++) {
      const message = normalizeMessage({ exchange: "x", routingKey: "k", payload: i }, {}, { maxPayloadBytes: 100 });
      const results = (await pool.query(
        `BEGIN; ${inline(...write(message))};
         SELECT count(*)::int AS ahead FROM outbox_message
         WHERE id = currval(pg_get_serial_sequence('outbox_message', 'id')) AND available_at > clock_timestamp();
         ROLLBACK`,
      )) as unknown as Array<{ rows: Array<{ ahead: number }> }>;
      ahead += results[2]!.rows[0]!.ahead;
    }
    expect(ahead).toBe(0);
  });

  it("gives a new message an available_at that is never after the next transaction's now()", async () => {
    const c = await pool.connect();
    try {
      let notDue = 0;
      for (let i = 0; i < 300; i++) {
        const message = normalizeMessage({ exchange: "x", routingKey: "k", payload: i }, {}, { maxPayloadBytes: 100 });
        const [{ id }] = (await c.query(...write(message))).rows;
        // A transaction of its own, right after the insert committed, as a relay's claim is.
        const due = await c.query("SELECT available_at <= now() AS due FROM outbox_message WHERE id = $1", [id]);
        if (!due.rows[0].due) notDue++;
      }
      expect(notDue).toBe(0);
    } finally {
      c.release();
    }
  });

  it("stores every field as given: the payload's exact text, headers, type, correlation id, a given available_at", async () => {
    const message = normalizeMessage(
      {
        exchange: "orders",
        routingKey: "order.created",
        payload: { b: 1, a: [true, null, "é"] },
        headers: { "x-tenant": "t1", n: 2 },
        type: "OrderCreated",
        correlationId: "c-1",
        availableAt: new Date("2030-01-02T03:04:05.678Z"),
      },
      {},
      { maxPayloadBytes: 1000 },
    );
    const [{ id }] = (await pool.query(...write(message, true))).rows;
    const { rows } = await pool.query(
      `SELECT message_id::text, exchange, routing_key, payload::text, headers, type, correlation_id,
              available_at, attempts, ordering_key, created_at <= now() AS created
       FROM outbox_message WHERE id = $1`,
      [id],
    );
    expect(rows).toEqual([
      {
        message_id: message.messageId,
        exchange: "orders",
        routing_key: "order.created",
        payload: message.payload,
        headers: { "x-tenant": "t1", n: 2 },
        type: "OrderCreated",
        correlation_id: "c-1",
        available_at: new Date("2030-01-02T03:04:05.678Z"),
        attempts: 0,
        ordering_key: null,
        created: true,
      },
    ]);
  });
});
