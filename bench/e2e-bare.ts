// The baseline beside bench:inbox (e): the same path written by hand with nothing of ours, run at the same rate, in
// the same process layout, on the same machine in the same run, so "ratio ours / bare" says how much of (e)'s
// latency is the library and how much is the path and the machine. Two shapes of the consuming side:
//   store, then handle (the library's shape): the consumer INSERTs what arrived together (autocommit), acks it, then
//     runs each row's Prisma interactive transaction (the handler's create + the UPDATE that marks it processed),
//     4 at a time;
//   handled in the storing transaction (a shape the library does not have): one Prisma interactive transaction per
//     delivery INSERTs its row as processed (ON CONFLICT DO NOTHING) and runs the handler's create, then the delivery
//     is acked: one round trip and one WAL flush fewer per message.
// The sending side is the same for both: an autocommit INSERT through Prisma (as `$enqueue` outside a transaction),
// the id handed in-process to a relay loop: BEGIN + DELETE ... RETURNING in one round trip, publish on a confirm
// channel, wait for the confirms, COMMIT. No retries, leases, dead letters, ordering, telemetry or validation: the
// figure is the path's own cost under the same load, not a competitor.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { performance } from "node:perf_hooks";
import amqp, { type ConsumeMessage } from "amqplib";
import pg from "pg";
import type { PrismaClient } from "../test/support/prisma.js";
import { type CpuRow, databaseOf, startCpu } from "./cpu.js";

export type BareShape = "store then handle" | "handled in the storing transaction";

const CONCURRENCY = 4;
const now = () => performance.timeOrigin + performance.now();

/** The bare tables, created once per database. */
async function createBareTables(pool: pg.Pool): Promise<void> {
  await pool.query(`
    CREATE TABLE IF NOT EXISTS bare_outbox (id bigserial PRIMARY KEY, message_id text NOT NULL, body text NOT NULL);
    CREATE TABLE IF NOT EXISTS bare_inbox (
      id bigserial PRIMARY KEY, message_id text NOT NULL, handler text NOT NULL, body text NOT NULL,
      status text NOT NULL, UNIQUE (message_id, handler))`);
}

/**
 * The consuming side: consumes `queue`, handles every delivery in `shape`, calls `handled(messageId, at)` after each
 * handler COMMIT. Resolves once consuming; the returned function stops it.
 */
export async function bareConsumer(
  prisma: PrismaClient,
  databaseUrl: string,
  amqpUrl: string,
  queue: string,
  shape: BareShape,
  handled: (messageId: string, at: number) => void,
): Promise<() => Promise<void>> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const connection = await amqp.connect(amqpUrl, { noDelay: true });
  const channel = await connection.createChannel();
  await channel.prefetch(1000);
  let slots = 0;
  const waiting: Array<() => Promise<void>> = [];
  const run = (job: () => Promise<void>) => {
    if (slots >= CONCURRENCY) return void waiting.push(job);
    slots++;
    void job().finally(() => {
      slots--;
      const next = waiting.shift();
      if (next) run(next);
    });
  };
  const handle = async (tx: Parameters<Parameters<PrismaClient["$transaction"]>[0]>[0], messageId: string) => {
    await tx.effect.create({ data: { messageId, handler: "bare", payload: {} } });
  };
  let buffer: ConsumeMessage[] = [];
  // INSERTs may overlap; acks go in delivery order (a `multiple` ack covers every earlier delivery).
  let acked = Promise.resolve();
  const store = async (batch: ConsumeMessage[]) => {
    const ids = batch.map((m) => String(m.properties.messageId));
    const inserting = pool.query<{ id: string; message_id: string }>(
      `INSERT INTO bare_inbox (message_id, handler, body, status)
       SELECT id, 'bare', body, 'pending' FROM unnest($1::text[], $2::text[]) AS d(id, body)
       ON CONFLICT DO NOTHING RETURNING id, message_id`,
      [ids, batch.map((m) => m.content.toString())],
    );
    const previous = acked;
    acked = inserting.then(async () => {
      await previous;
      channel.ack(batch.at(-1)!, true);
    });
    const { rows } = await inserting;
    for (const row of rows) {
      run(async () => {
        await prisma.$transaction(async (tx) => {
          await handle(tx, row.message_id);
          await tx.$executeRawUnsafe("UPDATE bare_inbox SET status = 'processed' WHERE id = $1", row.id);
        });
        handled(row.message_id, now());
      });
    }
  };
  const direct = (m: ConsumeMessage) =>
    run(async () => {
      const messageId = String(m.properties.messageId);
      await prisma.$transaction(async (tx) => {
        const inserted = await tx.$executeRawUnsafe(
          `INSERT INTO bare_inbox (message_id, handler, body, status) VALUES ($1, 'bare', $2, 'processed')
           ON CONFLICT DO NOTHING`,
          messageId,
          m.content.toString(),
        );
        if (inserted === 1) await handle(tx, messageId);
      });
      channel.ack(m);
      handled(messageId, now());
    });
  const { consumerTag } = await channel.consume(queue, (m) => {
    if (m === null) return;
    if (shape === "handled in the storing transaction") return direct(m);
    // What arrived together goes into one INSERT, on the next macrotask (as the library's receiver).
    if (buffer.push(m) === 1) {
      setImmediate(() => {
        const batch = buffer;
        buffer = [];
        void store(batch);
      });
    }
  });
  return async () => {
    await channel.cancel(consumerTag);
    await connection.close();
    await pool.end();
  };
}

export interface BareRun {
  fromCommit: number[];
  cpu: CpuRow;
}

/**
 * One bare run: `rate` messages a second for `seconds` (after one second not measured), through `exchange` to a new
 * queue, consumed in this process or (with `childScript`) in a process of its own.
 */
export async function runBare(options: {
  prisma: PrismaClient;
  databaseUrl: string;
  amqpUrl: string;
  shape: BareShape;
  rate: number;
  seconds: number;
  separate: boolean;
  childScript: string;
  cwd: string;
  label: string;
}): Promise<BareRun> {
  const { prisma, databaseUrl, amqpUrl, shape, rate, seconds } = options;
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  await createBareTables(pool);
  await pool.query("TRUNCATE bare_outbox, bare_inbox");
  await pool.query(`DELETE FROM "Effect" WHERE handler = 'bare'`);
  const connection = await amqp.connect(amqpUrl, { noDelay: true });
  const confirm = await connection.createConfirmChannel();
  const exchange = `bench.bare.${randomUUID()}`;
  const queue = `${exchange}.q`;
  await confirm.assertExchange(exchange, "topic", { durable: false, autoDelete: false });
  await confirm.assertQueue(queue, { durable: true });
  await confirm.bindQueue(queue, exchange, "#");
  const handledAt = new Map<string, number>();
  const record = (id: string, at: number) => handledAt.set(id, at);
  let stopConsumer: () => Promise<void>;
  let childPid: number | undefined;
  if (options.separate) {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", options.childScript, databaseUrl, amqpUrl, queue, shape],
      { cwd: options.cwd, stdio: ["ignore", "inherit", "inherit", "ipc"] },
    );
    childPid = child.pid;
    await new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`bare consumer exited with ${code}`)));
      child.on("message", (m) => {
        if (m === "ready") return resolve();
        for (const [id, at] of m as Array<[string, number]>) record(id, at);
      });
    });
    stopConsumer = async () => {
      child.removeAllListeners("exit");
      const exited = once(child, "exit");
      child.send("stop");
      await exited;
    };
  } else {
    stopConsumer = await bareConsumer(prisma, databaseUrl, amqpUrl, queue, shape, record);
  }

  // The relay: one loop, woken by the writers; what was handed over meanwhile goes in one claim.
  const relayClient = new pg.Client({ connectionString: databaseUrl });
  await relayClient.connect();
  let handed: string[] = [];
  let wake: (() => void) | undefined;
  let stopping = false;
  const relay = (async () => {
    while (!stopping || handed.length > 0) {
      if (handed.length === 0) {
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      const ids = handed;
      handed = [];
      // The ids are bigints from our own INSERT: inlined, so BEGIN and the claim go in one round trip.
      const results = (await relayClient.query(
        `BEGIN; DELETE FROM bare_outbox WHERE id IN (${ids.join(",")}) RETURNING message_id, body`,
      )) as unknown as pg.QueryResult<{ message_id: string; body: string }>[];
      for (const row of results[1]!.rows) {
        confirm.publish(exchange, "bench.bare", Buffer.from(row.body), { persistent: true, messageId: row.message_id });
      }
      await confirm.waitForConfirms();
      await relayClient.query("COMMIT");
    }
  })();
  const committedAt = new Map<string, number>();
  const body = JSON.stringify({ note: "x".repeat(490) });
  const write = async (measured: boolean) => {
    const messageId = randomUUID();
    const rows = await prisma.$queryRawUnsafe<Array<{ id: bigint }>>(
      "INSERT INTO bare_outbox (message_id, body) VALUES ($1, $2) RETURNING id",
      messageId,
      body,
    );
    if (measured) committedAt.set(messageId, now());
    handed.push(String(rows[0]!.id));
    wake?.();
    wake = undefined;
    return messageId;
  };
  const paced = async (count: number, measured: boolean) => {
    const interval = 1000 / rate;
    const t0 = performance.now();
    const writes: Promise<string>[] = [];
    for (let i = 0; i < count; i++) {
      const wait = t0 + i * interval - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      writes.push(write(measured));
    }
    return Promise.all(writes);
  };
  const waitHandled = async (ids: readonly string[]) => {
    const deadline = Date.now() + 60_000;
    for (const id of ids) {
      while (!handledAt.has(id)) {
        if (Date.now() > deadline) throw new Error(`bare ${shape}: ${handledAt.size} handled after 60 s`);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await waitHandled(await paced(rate, false)); // one second not measured: connections open, the JIT warms up
  // The consumer stands where the inbox stands in (e): the same columns of the CPU table.
  const processes = { [`bench (app, relay${options.separate ? "" : ", inbox"})`]: process.pid, inbox: childPid };
  const cpu = startCpu(processes, [databaseOf(databaseUrl)]);
  const total = Math.round(rate * seconds);
  await waitHandled(await paced(total, true));
  const usage = cpu.stop();
  stopping = true;
  wake?.();
  await relay;
  await stopConsumer();
  await relayClient.end();
  await confirm.deleteQueue(queue);
  await confirm.deleteExchange(exchange);
  await connection.close();
  const effects = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "Effect" WHERE handler = 'bare'`);
  await pool.end();
  if (Number(effects.rows[0]!.n) !== total + rate) {
    throw new Error(`bare ${shape}: ${effects.rows[0]!.n} effects, expected ${total + rate}`);
  }
  return {
    fromCommit: [...committedAt].map(([id, at]) => handledAt.get(id)! - at),
    cpu: { case: `(e) ${options.label}, bare: ${shape}, at ${rate} msg/s`, cpu: usage, messages: total },
  };
}
