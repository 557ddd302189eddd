// The insert's defaults, against PostgreSQL: a new message is due as soon as its transaction has committed, however
// soon the relay's claim starts (the in-process hand-off claims within a millisecond of the insert).
import { afterAll, describe, expect, it } from "vitest";
import { normalizeMessage } from "../../src/message/message.js";
import { outboxNames } from "../../src/sql/names.js";
import { insertMessagesParams, insertMessagesSql } from "../../src/sql/outbox/insert.js";
import { newPool, useTestDatabase } from "../support/prisma.js";

const url = await useTestDatabase();
const pool = newPool(url, 1);
afterAll(() => pool.end());

describe("insertMessagesSql", () => {
  it("gives a new message an available_at that is never after the next transaction's now()", async () => {
    const c = await pool.connect();
    try {
      const sql = insertMessagesSql(outboxNames(), false);
      let notDue = 0;
      for (let i = 0; i < 300; i++) {
        const message = normalizeMessage({ exchange: "x", routingKey: "k", payload: i }, {}, { maxPayloadBytes: 100 });
        const [{ id }] = (await c.query(sql, insertMessagesParams([message]))).rows;
        // A transaction of its own, right after the insert committed, as a relay's claim is.
        const due = await c.query("SELECT available_at <= now() AS due FROM outbox_message WHERE id = $1", [id]);
        if (!due.rows[0].due) notDue++;
      }
      expect(notDue).toBe(0);
    } finally {
      c.release();
    }
  });
});
