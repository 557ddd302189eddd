// RabbitMQ's routing rules, without a broker (memory-routing.test.ts checks the same cases against a real one).
import { describe, expect, it } from "vitest";
import {
  type Binding,
  headersMatch,
  invalidHeadersBinding,
  routeBindings,
  topicMatches,
  topicWords,
} from "../../src/transport/memory-routing.js";

describe("topic", () => {
  it("splits keys into words as RabbitMQ does: the empty key has none, a trailing dot makes an empty word", () => {
    expect(topicWords("")).toEqual([]);
    expect(topicWords("a")).toEqual(["a"]);
    expect(topicWords("a.")).toEqual(["a", ""]);
    expect(topicWords(".")).toEqual(["", ""]);
    expect(topicWords("a..b")).toEqual(["a", "", "b"]);
  });

  const cases: Array<[binding: string, key: string, matches: boolean]> = [
    ["a.b", "a.b", true],
    ["a.b", "a.c", false],
    ["a.*", "a.b", true],
    ["a.*", "a", false],
    ["a.*", "a.b.c", false],
    ["a.*", "a.", true], // `*` takes an empty word
    ["*", "", false], // the empty key has no word for `*`
    ["*", "abc", true],
    ["*", "a.b", false],
    ["#", "", true],
    ["#", "a.b.c", true],
    ["#", ".", true],
    ["a.#", "a", true],
    ["a.#", "a.b.c", true],
    ["a.#", "ab", false],
    ["#.a", "a", true],
    ["#.a", "x.y.a", true],
    ["#.a", "x.y.b", false],
    ["a.#.b", "a.b", true],
    ["a.#.b", "a.x.y.b", true],
    ["a.#.b", "a.x.y", false],
    ["#.#", "", true],
    ["#.#", "a", true],
    ["#.*", "", false],
    ["#.*", "a", true],
    ["*.#", "a.b", true],
    ["*.*", "a..", false],
    ["*.*.*", "a..", true],
    ["", "", true],
    ["", "a", false],
    ["a", "", false],
    ["a..b", "a..b", true],
    ["a.*.b", "a..b", true],
    ["a.#.#.b", "a.b", true],
    ["#.b.#", "a.b.c.b", true],
    ["a", "A", false],
  ];
  it.each(cases)("binding %j, routing key %j: %s", (binding, key, matches) => {
    expect(topicMatches(binding, key)).toBe(matches);
  });

  it("stays linear on many `#` against a long key that does not match", () => {
    const binding = `${Array.from({ length: 30 }, () => "#").join(".")}.z`;
    const key = Array.from({ length: 200 }, () => "a").join(".");
    const started = performance.now();
    expect(topicMatches(binding, key)).toBe(false);
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe("headers", () => {
  const cases: Array<
    [name: string, args: Record<string, unknown>, headers: Record<string, unknown>, matches: boolean]
  > = [
    ["all by default", { a: 1, b: "x" }, { a: 1, b: "x", c: true }, true],
    ["all: one missing", { a: 1, b: "x" }, { a: 1 }, false],
    ["all: one different", { "x-match": "all", a: 1, b: "x" }, { a: 1, b: "y" }, false],
    ["any: one matches", { "x-match": "any", a: 1, b: "x" }, { b: "x" }, true],
    ["any: none matches", { "x-match": "any", a: 1, b: "x" }, { a: 2 }, false],
    ["all with only x-match matches everything", { "x-match": "all" }, {}, true],
    ["any with only x-match matches nothing", { "x-match": "any" }, { a: 1 }, false],
    ["x- arguments ignored", { "x-match": "all", "x-k": 1, a: 1 }, { a: 1 }, true],
    ["all-with-x compares x- arguments", { "x-match": "all-with-x", "x-k": 1 }, {}, false],
    ["all-with-x: present", { "x-match": "all-with-x", "x-k": 1 }, { "x-k": 1 }, true],
    ["any-with-x", { "x-match": "any-with-x", "x-k": 1, a: 2 }, { "x-k": 1 }, true],
    ["no value: presence", { a: null }, { a: "anything" }, true],
    ["no value: absent", { a: null }, {}, false],
    ["no value matches a void header", { a: null }, { a: null }, true],
    ["a void header is no value", { a: "x" }, { a: null }, false],
    ["numbers by value, not AMQP type", { a: 1 }, { a: { "!": "long", value: 1 } }, true],
    ["an integer equals its double", { a: 1 }, { a: { "!": "double", value: 1 } }, true],
    ["a string equals its bytes", { a: "ab" }, { a: Buffer.from("ab") }, true],
    ["true is not 1", { a: true }, { a: 1 }, false],
    ['"1" is not 1', { a: "1" }, { a: 1 }, false],
    ["nested tables compare types", { a: { b: 1 } }, { a: { b: { "!": "long", value: 1 } } }, false],
    ["nested tables equal", { a: { b: 1, c: "x" } }, { a: { b: 1, c: "x" } }, true],
    ["arrays equal", { a: [1, "x"] }, { a: [1, "x"] }, true],
    ["arrays differ", { a: [1, "x"] }, { a: ["x", 1] }, false],
  ];
  it.each(cases)("%s", (_name, args, headers, matches) => {
    expect(headersMatch(args, headers)).toBe(matches);
  });

  it("refuses an x-match that is not all, any, all-with-x or any-with-x, as RabbitMQ's 406", () => {
    expect(invalidHeadersBinding({ "x-match": "some" })).toMatch(/Invalid x-match field value "some"/);
    expect(invalidHeadersBinding({ "x-match": 1 })).toMatch(/expected longstr/);
    expect(invalidHeadersBinding({ "x-match": "any-with-x" })).toBeUndefined();
    expect(invalidHeadersBinding({ a: 1 })).toBeUndefined();
    expect(invalidHeadersBinding(undefined)).toBeUndefined();
  });
});

describe("routeBindings", () => {
  const bind = (queue: string, routingKey: string, args?: Record<string, unknown>): Binding => ({
    queue,
    routingKey,
    arguments: args,
  });

  it("direct: the exact key; a queue bound twice gets one copy", () => {
    const bindings = [bind("q1", "a"), bind("q2", "b"), bind("q1", "a"), bind("q3", "a")];
    expect(routeBindings("direct", bindings, "a", undefined)).toEqual(["q1", "q3"]);
    expect(routeBindings("direct", bindings, "c", undefined)).toEqual([]);
  });

  it("fanout: every queue once, whatever the key", () => {
    const bindings = [bind("q1", "a"), bind("q2", "b"), bind("q1", "c")];
    expect(routeBindings("fanout", bindings, "zzz", undefined)).toEqual(["q1", "q2"]);
  });

  it("topic: a queue matching through two bindings gets one copy", () => {
    const bindings = [bind("q1", "order.*"), bind("q1", "#"), bind("q2", "payment.#")];
    expect(routeBindings("topic", bindings, "order.created", undefined)).toEqual(["q1"]);
  });

  it("headers: no headers at all is an empty table", () => {
    const bindings = [bind("q1", "", { "x-match": "all" }), bind("q2", "", { a: 1 })];
    expect(routeBindings("headers", bindings, "", undefined)).toEqual(["q1"]);
  });
});
