// The Prisma internals outbox() relies on are checked when it is applied: a Prisma whose internals moved gets an
// OutboxConfigError naming the version found and the versions proven, never a TypeError in the middle of a write.
// The tests of this folder prove the internals work on the installed Prisma; CI runs them on the lowest supported
// and the newest 7.x release.
import { Prisma } from "@prisma/client/extension";
import { afterAll, describe, expect, it } from "vitest";
import { PROVEN_RANGE, transactionOfClient, transactionOfQuery } from "../../src/extension/prisma-internals.js";
import { OutboxConfigError, outbox } from "../../src/index.js";
import { newPrismaClient, useTestDatabase } from "../support/prisma.js";

const url = await useTestDatabase();
const base = newPrismaClient(url);
afterAll(() => base.$disconnect());

/** The client as a future Prisma might present it: one internal gone or changed. */
function without(name: string, value: unknown = undefined): typeof base {
  return new Proxy(base, {
    get: (target, key, receiver) => (key === name ? value : Reflect.get(target, key, receiver)),
  });
}

const version = Prisma.prismaVersion.client;

describe("checked when the extension is applied", () => {
  it.each([
    ["_createItxClient", undefined, /no _createItxClient\(\)/],
    ["_runtimeDataModel", undefined, /no _runtimeDataModel\.models/],
    ["_runtimeDataModel", { models: { Order: { fields: "x" } } }, /runtime data model of Order has no fields/],
    ["_globalOmit", "yes", /_globalOmit is not an object/],
  ])("%s missing or changed: OutboxConfigError with the versions", (name, value, message) => {
    const extension = outbox({ exchange: "x", queue: false, events: { Order: { create: true } } });
    const apply = () => (extension as unknown as (client: unknown) => unknown)(without(name, value));
    expect(apply).toThrow(OutboxConfigError);
    expect(apply).toThrow(message);
    expect(apply).toThrow(`@prisma/client ${version}`);
    expect(apply).toThrow(`proven on @prisma/client ${PROVEN_RANGE}`);
  });

  it("the installed Prisma passes every check", () => {
    expect(() =>
      base.$extends(outbox({ exchange: "x", queue: false, events: { Order: { create: true } } })),
    ).not.toThrow();
  });
});

describe("checked where they are met", () => {
  it("a query hook without __internalParams, or with a transaction of another shape", () => {
    expect(() => transactionOfQuery({})).toThrow(/query hooks receive no __internalParams/);
    expect(() => transactionOfQuery({ __internalParams: { transaction: { kind: "other" } } })).toThrow(
      OutboxConfigError,
    );
    expect(transactionOfQuery({ __internalParams: {} })).toBeUndefined();
    expect(transactionOfQuery({ __internalParams: { transaction: { kind: "itx", id: "1" } } })).toEqual({
      kind: "itx",
      id: "1",
    });
  });

  it("a transaction client without its scope context or transaction", async () => {
    await expect(transactionOfClient({})).rejects.toThrow(/no _createPrismaPromise/);
    await base.$transaction(async (tx) => {
      const transaction = await transactionOfClient(tx);
      expect(transaction.kind).toBe("itx");
      const hidden = new Proxy(tx, {
        get: (t, k, r) =>
          k === Symbol.for("prisma.client.transaction.scope_context") ? undefined : Reflect.get(t, k, r),
      });
      await expect(transactionOfClient(hidden)).rejects.toThrow(/carries no scope context/);
    });
  });
});
