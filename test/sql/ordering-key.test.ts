// The keyed insert, against PostgreSQL: per ordering key, ids follow commit order. Two transactions writing one key
// would otherwise draw their ids in one order and commit in the other; the insert's key locks make the second wait
// for the first to end before it draws any id.
import type pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { type NormalizedMessage, normalizeMessage } from "../../src/message/message.js";
import { outboxNames } from "../../src/sql/names.js";
import {
  insertKeyedMessagesParams,
  insertMessagesParams,
  insertMessagesSql,
  keyShape,
} from "../../src/sql/outbox/insert.js";
import { newPool, useTestDatabase } from "../support/prisma.js";

const url = await useTestDatabase();
const pool = newPool(url, 12);
afterAll(() => pool.end());

const names = outboxNames();
const message = (payload: unknown, key?: string): NormalizedMessage =>
  normalizeMessage(
    { exchange: "x", routingKey: "k", payload, ...(key === undefined ? {} : { key }) },
    {},
    { maxPayloadBytes: 1_000 },
  );

/** Inserts with the statement the extension picks: one distinct key and several keys take different ones. */
async function insert(c: pg.PoolClient, messages: NormalizedMessage[]): Promise<string[]> {
  const keys = keyShape(messages);
  const { rows } = await c.query(
    insertMessagesSql(names, false, keys),
    keys === "none" ? insertMessagesParams(messages) : insertKeyedMessagesParams(messages),
  );
  return rows.map((r: { id: string }) => r.id);
}

async function begin(): Promise<pg.PoolClient> {
  const c = await pool.connect();
  await c.query("BEGIN");
  return c;
}

/** The backend pid of a client (to find it in pg_stat_activity). */
async function pidOf(c: pg.PoolClient): Promise<number> {
  return (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
}

/** Waits until the session waits for an advisory lock. */
async function waitsForKeyLock(pid: number): Promise<boolean> {
  const r = await pool.query("SELECT wait_event FROM pg_stat_activity WHERE pid = $1", [pid]);
  return r.rows[0]?.wait_event === "advisory";
}

/** Records the order in which promises settle. */
function settleOrder() {
  const order: string[] = [];
  return { order, track: <T>(name: string, p: Promise<T>) => p.finally(() => order.push(name)) };
}

describe("keyed insert: per key, ids in commit order", () => {
  it("without a key, two transactions can commit in the reverse order of their ids (what keys prevent)", async () => {
    const t1 = await begin();
    const t2 = await begin();
    try {
      const [a] = await insert(t1, [message("first")]);
      const [b] = await insert(t2, [message("second")]);
      const { order, track } = settleOrder();
      await track("t2", t2.query("COMMIT"));
      await track("t1", t1.query("COMMIT"));
      expect(BigInt(a!)).toBeLessThan(BigInt(b!));
      expect(order).toEqual(["t2", "t1"]); // commit order t2, t1; id order t1, t2
    } finally {
      t1.release();
      t2.release();
    }
  });

  it("with one key, the second writer (which commits as soon as it can) waits, and its ids come after all of the first's", async () => {
    const t1 = await begin();
    const t2 = await begin();
    try {
      const [a1] = await insert(t1, [message("t1 first", "order-1")]);
      const pid2 = await pidOf(t2);
      // t2 writes the same key and commits at once: without the lock it would draw its id now (above a1), commit
      // first, and its message would be published after t1's later message a2 although it committed before it.
      const t2Done = insert(t2, [message("t2", "order-1")]).then(async (ids) => {
        // What t2 sees as soon as its insert returns: t1's rows, committed (read committed, a new snapshot).
        const seen = await t2.query("SELECT count(*)::int AS n FROM outbox_message WHERE ordering_key = 'order-1'");
        await t2.query("COMMIT");
        return { ids, seenBefore: seen.rows[0].n - 1 };
      });
      await expect.poll(() => waitsForKeyLock(pid2)).toBe(true);
      // t1 writes the key again, in a second statement, while t2 waits: t2 must not have drawn its id yet.
      const [a2] = await insert(t1, [message("t1 second", "order-1")]);
      await t1.query("COMMIT");
      const {
        ids: [b],
        seenBefore,
      } = await t2Done;
      // t2's insert returned only after t1 had committed both of its rows: t1 commits first, and t2 after.
      expect(seenBefore).toBe(2);
      expect(BigInt(a1!)).toBeLessThan(BigInt(a2!));
      expect(BigInt(a2!)).toBeLessThan(BigInt(b!)); // the id order is the commit order
      const stored = await pool.query(
        "SELECT id::text, ordering_key FROM outbox_message WHERE id = ANY($1::bigint[]) ORDER BY id",
        [[a1, a2, b]],
      );
      expect(stored.rows).toEqual([
        { id: a1, ordering_key: "order-1" },
        { id: a2, ordering_key: "order-1" },
        { id: b, ordering_key: "order-1" },
      ]);
    } finally {
      t1.release();
      t2.release();
    }
  });

  it("a writer of the key whose first writer rolls back goes on, with ids after the rolled-back ones", async () => {
    const t1 = await begin();
    const t2 = await begin();
    try {
      const [a] = await insert(t1, [message("rolled back", "order-2")]);
      const pid2 = await pidOf(t2);
      const t2Insert = insert(t2, [message("kept", "order-2")]);
      await expect.poll(() => waitsForKeyLock(pid2)).toBe(true);
      await t1.query("ROLLBACK");
      const [b] = await t2Insert;
      await t2.query("COMMIT");
      expect(BigInt(b!)).toBeGreaterThan(BigInt(a!));
    } finally {
      t1.release();
      t2.release();
    }
  });

  it("writers of different keys, and writers without keys, do not wait for each other", async () => {
    const t1 = await begin();
    const t2 = await begin();
    const t3 = await begin();
    try {
      await insert(t1, [message(1, "key-a"), message(2, "key-b")]);
      // Both return while t1 holds its keys: neither waits.
      await insert(t2, [message(3, "key-c"), message(4)]);
      await insert(t3, [message(5)]);
      await Promise.all([t1, t2, t3].map((t) => t.query("COMMIT")));
    } finally {
      for (const t of [t1, t2, t3]) t.release();
    }
  });

  it("writers of several keys given in opposite orders do not deadlock (keys are locked in one order)", async () => {
    const keys = Array.from({ length: 8 }, (_, i) => `multi-${i}`);
    const rounds = 20;
    const writer = async (reverse: boolean) => {
      const c = await pool.connect();
      try {
        for (let r = 0; r < rounds; r++) {
          await c.query("BEGIN");
          const list = reverse ? [...keys].reverse() : keys;
          await insert(
            c,
            list.map((k) => message(r, k)),
          );
          await c.query("COMMIT");
        }
      } finally {
        c.release();
      }
    };
    await Promise.all([writer(false), writer(true), writer(false), writer(true)]);
    const { rows } = await pool.query(
      "SELECT count(*)::int AS n FROM outbox_message WHERE ordering_key LIKE 'multi-%'",
    );
    expect(rows[0].n).toBe(4 * rounds * keys.length);
  });

  it("many concurrent writers of a few keys: per key, ids are in commit order", async () => {
    // Each writer records, inside its transaction and after its insert, the keys' commit sequence: a row in a
    // side table written just before COMMIT. With the key lock held from the insert to COMMIT, the order of those
    // rows per key must be the order of the message ids.
    await pool.query(
      "CREATE TABLE IF NOT EXISTS commit_seq (seq bigserial PRIMARY KEY, key text, message_ids bigint[])",
    );
    const keys = ["hot-1", "hot-2", "hot-3"];
    const writer = async (w: number) => {
      const c = await pool.connect();
      try {
        for (let r = 0; r < 15; r++) {
          const key = keys[(w + r) % keys.length]!;
          await c.query("BEGIN");
          const ids = await insert(c, [message({ w, r }, key), message({ w, r, n: 2 }, key)]);
          if ((w + r) % 3 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
          await c.query("INSERT INTO commit_seq (key, message_ids) VALUES ($1, $2::bigint[])", [key, ids]);
          await c.query("COMMIT");
        }
      } finally {
        c.release();
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, w) => writer(w)));
    for (const key of keys) {
      const { rows } = await pool.query(
        "SELECT message_ids::text[] AS ids FROM commit_seq WHERE key = $1 ORDER BY seq",
        [key],
      );
      const inCommitOrder = rows.flatMap((r: { ids: string[] }) => r.ids).map(BigInt);
      const sorted = [...inCommitOrder].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
      expect(inCommitOrder).toEqual(sorted);
      expect(inCommitOrder).toHaveLength(8 * 5 * 2);
    }
  });
});
