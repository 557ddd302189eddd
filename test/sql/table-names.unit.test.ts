// The inbox's and request-reply's names, like the outbox's (sql-names.test.ts): schema-qualified, quoted, one
// identifier whatever the schema's name; and the text literal the inbox's INSERT names its own table with.
import { describe, expect, it } from "vitest";
import { inboxNames, quoteIdentifier, quoteLiteral, requestNames } from "../../src/sql/names.js";

describe("inboxNames and requestNames", () => {
  it("qualify and quote the tables, public by default", () => {
    expect(inboxNames()).toEqual({ schema: "public", inboxTable: '"public"."inbox_message"', now: "now()" });
    expect(requestNames()).toEqual({ schema: "public", requestTable: '"public"."outbox_request"' });
    expect(inboxNames("Inbox-Schema").inboxTable).toBe('"Inbox-Schema"."inbox_message"');
    expect(requestNames('We"ird').requestTable).toBe(`${quoteIdentifier('We"ird')}."outbox_request"`);
    expect(inboxNames("x")).toBe(inboxNames("x")); // computed once per schema
  });

  it("quoteLiteral: quotes and backslashes escaped in an E'' literal, NUL refused", () => {
    expect(quoteLiteral('"s"."inbox_message"')).toBe(`E'"s"."inbox_message"'`);
    expect(quoteLiteral("a'b\\c")).toBe("E'a''b\\\\c'");
    expect(() => quoteLiteral("a\0b")).toThrow(TypeError);
  });
});
