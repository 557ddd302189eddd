// requests() against the real PostgreSQL and RabbitMQ: submit (own or caller's transaction, idempotency keys, races),
// the handler (running, progress seen while it runs, result once with the inbox completion, failure after the last
// attempt, cancellation pending and running), status never going back, retention, and bad input.
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createRelay,
  type Inbox,
  inbox,
  OutboxConfigError,
  type Relay,
  RequestCancelledError,
  RequestIdempotencyError,
  RequestInputError,
  type RequestWork,
  requests,
} from "../../src/index.js";
import { uniqueName } from "../support/consumer.js";
import { quiet } from "../support/logger.js";
import { useRequests } from "../support/requests.js";
import { untilValue } from "../support/wait.js";

const { amqpUrl, databaseUrl, pool, base, exchange, handoff, prisma, reqs, connection, channel } =
  await useRequests("rr");
type Tx = Parameters<Parameters<typeof prisma.$transaction>[0]>[0];
const running: Array<Inbox | Relay> = [];
const queues: string[] = [];

async function relay(): Promise<Relay> {
  const r = createRelay({
    databaseUrl,
    amqpUrl,
    queue: handoff,
    listen: false,
    sweepIntervalMs: 100,
    sweepMinAgeMs: 0,
    logger: false,
  });
  await r.start();
  running.push(r);
  return r;
}

/** An inbox running `work` for type "report" (and "other": a second type on the same queue). */
async function worker(
  work: RequestWork<any, unknown, Tx>,
  options: { maxAttempts?: number; logger?: { info(): void; warn(message: string): void; error(): void } } = {},
): Promise<Inbox> {
  const queue = uniqueName("rr.q");
  queues.push(queue);
  const box = inbox<Record<string, unknown>, typeof prisma>({
    prisma,
    queue: { name: queue, bindings: [{ exchange, routingKey: reqs.routingKey("report") }] },
    handlers: { report: reqs.handler("report", work) },
    sweepIntervalMs: 100,
    retryBaseDelayMs: 10,
    retryMaxDelayMs: 20,
    logger: quiet,
    ...options,
  });
  running.push(box);
  await box.start({ databaseUrl, amqpUrl });
  return box;
}

const until = <T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string) =>
  untilValue(read, ok, what, 15_000, 20);
const finished = (id: string) =>
  until(
    () => reqs.status(id),
    (s) => s !== undefined && ["succeeded", "failed", "cancelled"].includes(s.status),
    `request ${id} finished`,
  );
const count = async (sql: string, ...params: unknown[]) => Number((await pool.query(sql, params)).rows[0].count);

beforeEach(async () => {
  await pool.query('TRUNCATE outbox_request, inbox_message, outbox_message, "Effect" RESTART IDENTITY');
});
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop();
  for (const q of queues.splice(0)) await channel.deleteQueue(q).catch(() => {});
});
afterAll(async () => {
  await channel.deleteExchange(exchange).catch(() => {});
  await connection.close();
  await prisma.$disconnect();
  await pool.end();
});

describe("submit", () => {
  it("writes a pending status row and the outbox message (its id is the request's) in one transaction", async () => {
    const { id, created } = await reqs.submit("report", { month: "2026-11" });
    expect(created).toBe(true);
    const status = await reqs.status(id);
    expect(status).toMatchObject({ id, type: "report", status: "pending", input: { month: "2026-11" }, attempts: 0 });
    expect(status!.progress).toEqual({ percent: 0, message: undefined });
    const { rows } = await pool.query("SELECT message_id::text, exchange, routing_key, payload FROM outbox_message");
    expect(rows).toEqual([
      { message_id: id, exchange, routing_key: "request.report", payload: { requestId: id, type: "report" } },
    ]);
  });

  it("in the caller's transaction: rolled back with it, or committed with its writes", async () => {
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.effect.create({ data: { messageId: "x", handler: "h" } });
        await reqs.submit("report", { n: 1 }, { tx });
        throw new Error("the caller rolls back");
      }),
    ).rejects.toThrow("the caller rolls back");
    expect(await count("SELECT count(*) FROM outbox_request")).toBe(0);
    expect(await count("SELECT count(*) FROM outbox_message")).toBe(0);
    const id = await prisma.$transaction(async (tx) => {
      await tx.effect.create({ data: { messageId: "x", handler: "h" } });
      return (await reqs.submit("report", { n: 2 }, { tx })).id;
    });
    expect((await reqs.status(id))?.status).toBe("pending");
    expect(await count("SELECT count(*) FROM outbox_message")).toBe(1);
    expect(await count('SELECT count(*) FROM "Effect"')).toBe(1);
  });

  it("idempotency key: the same input returns the same request (no second job); another input is a named error", async () => {
    const first = await reqs.submit("report", { a: 1, b: [1, 2] }, { idempotencyKey: "k-1" });
    // The same input written in another key order is the same input.
    const again = await reqs.submit("report", { b: [1, 2], a: 1 }, { idempotencyKey: "k-1" });
    expect(again).toEqual({ id: first.id, created: false });
    const error = await reqs.submit("report", { a: 2 }, { idempotencyKey: "k-1" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestIdempotencyError);
    expect(error).toMatchObject({ requestId: first.id, idempotencyKey: "k-1" });
    expect((error as Error).message).toContain("use a new key");
    // The key is per type, and a request without a key is always new.
    expect((await reqs.submit("other", { a: 2 }, { idempotencyKey: "k-1" })).created).toBe(true);
    expect((await reqs.submit("report", { a: 1 })).id).not.toBe((await reqs.submit("report", { a: 1 })).id);
    expect(await count("SELECT count(*) FROM outbox_request")).toBe(4);
    expect(await count("SELECT count(*) FROM outbox_message")).toBe(4);
  });

  it("30 concurrent submits with one key make one request and one message (the unique index decides)", async () => {
    const results = await Promise.all(
      Array.from({ length: 30 }, () => reqs.submit("report", { x: 1 }, { idempotencyKey: "race" })),
    );
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(await count("SELECT count(*) FROM outbox_request")).toBe(1);
    expect(await count("SELECT count(*) FROM outbox_message")).toBe(1);
  });

  it("refuses bad input with named errors saying what to fix", async () => {
    await expect(reqs.submit("no spaces", {})).rejects.toThrow(RequestInputError);
    await expect(reqs.submit("report.#", {})).rejects.toThrow(/letters, digits/);
    await expect(reqs.submit("report", { n: 1n })).rejects.toThrow(/\$\.n/);
    await expect(reqs.submit("report", {}, { idempotencyKey: "" })).rejects.toThrow(/idempotencyKey/);
    expect(await reqs.status("not-a-uuid")).toBeUndefined();
    expect(await reqs.status("0195a0b0-0000-7000-8000-000000000000")).toBeUndefined();
    expect(await reqs.cancel("nope")).toBeUndefined();
    expect(() => requests({ prisma: base, exchange })).toThrow(OutboxConfigError);
    expect(() => requests({ prisma: base, exchange })).toThrow(/outbox\(\)/);
    expect(() => requests({ prisma, exchange: "" })).toThrow(/exchange/);
    expect(() => requests({ prisma, exchange, retentionMs: -1 })).toThrow(/retentionMs/);
    expect(() => reqs.handler("report", "no" as never)).toThrow(RequestInputError);
  });
});

describe("the handler", () => {
  it("marks running, commits each progress report (seen while the work runs), then the result with succeeded", async () => {
    await relay();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    await worker(async (input: { n: number }, { progress, tx, requestId }) => {
      await tx.effect.create({ data: { messageId: requestId, handler: "report" } });
      await progress(40, "halfway there");
      await gate;
      return { doubled: input.n * 2 };
    });
    const { id } = await reqs.submit("report", { n: 21 });
    const seen = await until(
      () => reqs.status(id),
      (s) => s?.progress.percent === 40,
      "progress 40 seen",
    );
    expect(seen).toMatchObject({ status: "running", progress: { percent: 40, message: "halfway there" }, attempts: 1 });
    expect(seen!.startedAt).toBeInstanceOf(Date);
    // The work's own write is in the handler's transaction: not visible before it commits.
    expect(await count('SELECT count(*) FROM "Effect"')).toBe(0);
    release();
    const done = await finished(id);
    expect(done).toMatchObject({ status: "succeeded", result: { doubled: 42 }, progress: { percent: 100 } });
    expect(done!.completedAt!.getTime()).toBeGreaterThanOrEqual(done!.startedAt!.getTime());
    expect(done!.expiresAt!.getTime() - done!.completedAt!.getTime()).toBe(24 * 3_600_000);
    expect(await count('SELECT count(*) FROM "Effect"')).toBe(1);
    expect(await count("SELECT count(*) FROM inbox_message WHERE status = 'processed'")).toBe(1);
  });

  it("an attempt that fails rolls back its writes; the retry's result is written once", async () => {
    await relay();
    await worker(async (_input, { tx, attempt, requestId }) => {
      await tx.effect.create({ data: { messageId: requestId, handler: `attempt ${attempt}` } });
      if (attempt === 1) throw new Error("first attempt fails");
      return { attempt };
    });
    const { id } = await reqs.submit("report", {});
    expect(await finished(id)).toMatchObject({ status: "succeeded", result: { attempt: 2 }, attempts: 2 });
    const { rows } = await pool.query('SELECT handler FROM "Effect"');
    expect(rows).toEqual([{ handler: "attempt 2" }]);
  });

  it("fails with problem details after the inbox's last attempt, in the transaction that marks the message dead", async () => {
    await relay();
    await worker(
      async () => {
        throw new TypeError("the report source is down");
      },
      { maxAttempts: 3 },
    );
    const { id } = await reqs.submit("report", {});
    const done = await finished(id);
    expect(done).toMatchObject({
      status: "failed",
      attempts: 3,
      result: undefined,
      error: { type: "about:blank", title: "The request failed", status: 500, attempts: 3 },
    });
    expect(done!.error!.detail).toBe("TypeError: the report source is down");
    expect((await pool.query("SELECT status FROM inbox_message")).rows).toEqual([{ status: "dead" }]);
    // Never back from a finished state: cancelling a failed request changes nothing.
    expect((await reqs.cancel(id))?.status).toBe("failed");
  });

  it("fails when every attempt started and none finished (crashes inside the work), through the dead hook", async () => {
    // No relay: the request's message stays in the outbox. Its inbox row is written as a worker that crashed in the
    // work on each of its 3 attempts would have left it (attempts counted when claimed, never completed).
    const { id } = await reqs.submit("report", {});
    await pool.query(
      `INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload, attempts)
       VALUES ($1, 'report', $2, 'request.report', $3, 3)`,
      [id, exchange, JSON.stringify({ requestId: id, type: "report" })],
    );
    let runs = 0;
    await worker(
      async () => {
        runs++;
      },
      { maxAttempts: 3 },
    );
    const done = await finished(id);
    expect(runs).toBe(0);
    expect(done).toMatchObject({ status: "failed", error: { title: "The request failed", attempts: 4 } });
    expect(done!.error!.detail).toContain("3 attempts started and none finished");
    expect((await pool.query("SELECT status FROM inbox_message")).rows).toEqual([{ status: "dead" }]);
  });

  it("a request cancelled while pending never starts its work", async () => {
    const { id } = await reqs.submit("report", {});
    expect((await reqs.cancel(id))?.status).toBe("cancelled");
    let runs = 0;
    await relay();
    await worker(async () => {
      runs++;
      return "ran";
    });
    await until(
      () => count("SELECT count(*) FROM inbox_message WHERE status = 'processed'"),
      (n) => n === 1,
      "the message processed",
    );
    expect(runs).toBe(0);
    expect(await reqs.status(id)).toMatchObject({ status: "cancelled", attempts: 0, result: undefined });
  });

  it("cancelling a running request aborts the work's signal; its writes roll back; it stays cancelled", async () => {
    await relay();
    const reasons: unknown[] = [];
    await worker(async (_input, { signal, tx, requestId, progress }) => {
      await tx.effect.create({ data: { messageId: requestId, handler: "report" } });
      await progress(10, "started");
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      reasons.push(signal.reason);
      throw signal.reason;
    });
    const { id } = await reqs.submit("report", {});
    await until(
      () => reqs.status(id),
      (s) => s?.progress.percent === 10,
      "running",
    );
    expect((await reqs.cancel(id))?.status).toBe("cancelled");
    await until(
      async () => reasons.length,
      (n) => n === 1,
      "the signal aborted",
    );
    expect(reasons[0]).toBeInstanceOf(RequestCancelledError);
    await until(
      () => count("SELECT count(*) FROM inbox_message WHERE status = 'processed'"),
      (n) => n === 1,
      "the retry finds it cancelled",
    );
    expect(await reqs.status(id)).toMatchObject({ status: "cancelled", result: undefined });
    expect(await count('SELECT count(*) FROM "Effect"')).toBe(0);
  });

  it("a work that ignores the signal cannot write a result over a cancellation", async () => {
    await relay();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let runs = 0;
    await worker(async () => {
      runs++;
      await gate;
      return "too late";
    });
    const { id } = await reqs.submit("report", {});
    await until(
      () => reqs.status(id),
      (s) => s?.status === "running",
      "running",
    );
    await reqs.cancel(id);
    release();
    await until(
      () => count("SELECT count(*) FROM inbox_message WHERE status = 'processed'"),
      (n) => n === 1,
      "processed",
    );
    expect(runs).toBe(1);
    expect(await reqs.status(id)).toMatchObject({ status: "cancelled", result: undefined });
  });
});

describe("the result and the status, when the work runs again or its transaction rolls back", () => {
  it("the result commits with the handler's transaction: rolled back with it (lease taken over), no succeeded", async () => {
    await relay();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const warnings: string[] = [];
    await worker(
      async () => {
        await gate;
        return { done: true };
      },
      { logger: { ...quiet, warn: (message: string) => void warnings.push(message) } },
    );
    const { id } = await reqs.submit("report", {});
    await until(
      () => reqs.status(id),
      (s) => s?.status === "running",
      "running",
    );
    // Another processor's claim of the inbox row, as after this lease ran out: this attempt's transaction rolls back.
    await pool.query("UPDATE inbox_message SET attempts = attempts + 1, available_at = now() + interval '1 hour'");
    release();
    await until(
      async () => warnings.some((w) => w.includes("taken over by another processor")),
      (taken) => taken,
      "the attempt rolled back",
    );
    expect(await reqs.status(id)).toMatchObject({ status: "running", result: undefined });
    expect(await count("SELECT count(*) FROM inbox_message WHERE status = 'processed'")).toBe(0);
  });

  it("a request that succeeded stays succeeded when its job runs again: the work does not run", async () => {
    await relay();
    let runs = 0;
    await worker(async () => {
      runs++;
      return { run: runs };
    });
    const { id } = await reqs.submit("report", {});
    const done = await finished(id);
    expect(done).toMatchObject({ status: "succeeded", result: { run: 1 } });
    // The same job again, as a redelivery after its dedupe record expired would bring it.
    await pool.query(
      `INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload)
       VALUES ('again-' || $1, 'report', $2, 'request.report', $3)`,
      [id, exchange, JSON.stringify({ requestId: id, type: "report" })],
    );
    await until(
      () => count("SELECT count(*) FROM inbox_message WHERE status = 'processed'"),
      (n) => n === 2,
      "the second job processed",
    );
    expect(runs).toBe(1);
    expect(await reqs.status(id)).toEqual(done);
  });
});

describe("retention", () => {
  it("deletes expired finished requests in batches, and never an unfinished one", async () => {
    const short = requests({ prisma, exchange, retentionMs: 0, purgeBatchSize: 2, logger: quiet });
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await short.submit("report", { i }, { idempotencyKey: `k${i}` })).id);
    for (const id of ids.slice(0, 4)) await short.cancel(id);
    await new Promise((r) => setTimeout(r, 5));
    expect(await short.purgeExpired()).toBe(4);
    expect((await pool.query("SELECT id::text FROM outbox_request")).rows).toEqual([{ id: ids[4] }]);
    // An expired key is free again.
    expect((await short.submit("report", { other: true }, { idempotencyKey: "k0" })).created).toBe(true);
    // The default keeps a finished request for 24 hours.
    await reqs.cancel(ids[4]!);
    expect(await reqs.purgeExpired()).toBe(0);
  });
});
