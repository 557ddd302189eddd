// Schema-qualified names: any schema name PostgreSQL accepts becomes one quoted identifier, and each schema gets a
// NOTIFY channel of its own that PostgreSQL keeps whole (at most 63 bytes) and that needs no quoting in a literal.
import { describe, expect, it } from "vitest";
import { outboxNames, quoteIdentifier } from "../../src/sql/names.js";
import { listenSql } from "../../src/sql/outbox/listen.js";

describe("outboxNames", () => {
  it("qualifies and quotes the tables; public keeps the historical channel", () => {
    expect(outboxNames()).toMatchObject({
      outboxTable: '"public"."outbox_message"',
      deadLetterTable: '"public"."outbox_dead_letter"',
      notifyChannel: "prisma_outbox",
    });
    expect(outboxNames("outbox_x").notifyChannel).toBe("prisma_outbox.outbox_x");
    expect(listenSql(outboxNames("outbox_x"), "prisma_outbox_check_1_a")).toBe(
      'LISTEN "prisma_outbox.outbox_x"; LISTEN "prisma_outbox_check_1_a"',
    );
  });

  it.each([['We"ird; DROP TABLE x; --'], ["Outbox"], ["a".repeat(63)], ["é-ü"]])(
    "schema %j: one identifier, and a channel of at most 63 plain bytes, distinct per schema",
    (schema) => {
      const names = outboxNames(schema);
      expect(names.outboxTable).toBe(`${quoteIdentifier(schema)}."outbox_message"`);
      expect(quoteIdentifier(schema).slice(1, -1).replaceAll('""', "")).not.toContain('"');
      expect(Buffer.byteLength(names.notifyChannel)).toBeLessThanOrEqual(63);
      expect(names.notifyChannel).toMatch(/^prisma_outbox\.[a-z0-9_]+$/);
      expect(names.notifyChannel).not.toBe(outboxNames(`${schema}2`).notifyChannel);
    },
  );
});
