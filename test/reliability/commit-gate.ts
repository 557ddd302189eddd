// A PostgreSQL proxy that holds a relay's COMMIT: the reliability scenarios kill a worker exactly between the broker's
// confirms and its COMMIT.
import { startInterceptingProxy } from "../support/tcp-proxy.js";

export interface HeldCommit {
  /** message_id of every row the held transaction claimed (its DELETE ... RETURNING). */
  messageIds: string[];
  at: number;
}

export interface CommitGate {
  /** The same URL with host and port replaced by the gate's. */
  url(original: string): string;
  /**
   * From now on, the first COMMIT sent on a connection whose transaction claimed outbox rows is not forwarded, nor
   * anything after it on that connection: the transaction stays open (its rows locked and not deleted) until the
   * client goes away. Resolves with the claimed message ids once it holds one.
   */
  arm(): Promise<HeldCommit>;
  /** Connections open through the gate. */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of PostgreSQL that reads the wire protocol (v3, no SSL) just enough to see each transaction's
 * BEGIN / COMMIT (simple queries, as node-postgres sends statements without parameters; the claim may ride with the
 * BEGIN) and the rows it got back with a `message_id` column (whichever protocol the claim used). The relay sends COMMIT only after the broker confirmed every message of the batch, so a held
 * COMMIT followed by SIGKILL is exactly "killed after the broker's confirm and before COMMIT", with no timing luck.
 */
export async function startCommitGate(targetHost: string, targetPort: number): Promise<CommitGate> {
  let armed: ((held: HeldCommit) => void) | undefined;

  const proxy = await startInterceptingProxy(
    { targetHost, targetPort, name: "The commit gate", noDelay: true },
    (client, upstream) => {
      let fromClient: Buffer = Buffer.alloc(0);
      let startup = true;
      let holding = false;
      let fromServer: Buffer = Buffer.alloc(0);
      let messageIdColumn = -1;
      let claimed: string[] = [];

      upstream.on("data", (chunk: Buffer) => {
        client.write(chunk);
        fromServer = fromServer.length === 0 ? chunk : Buffer.concat([fromServer, chunk]);
        // Backend messages: type byte, int32 length (itself included), body.
        while (fromServer.length >= 5) {
          const total = 1 + fromServer.readInt32BE(1);
          if (fromServer.length < total) break;
          const type = String.fromCharCode(fromServer[0]!);
          const body = fromServer.subarray(5, total);
          if (type === "T") messageIdColumn = columnIndex(body, "message_id");
          else if (type === "D" && messageIdColumn >= 0) {
            const id = dataRowColumn(body, messageIdColumn);
            if (id !== undefined) claimed.push(id);
          }
          fromServer = fromServer.subarray(total);
        }
      });

      client.on("data", (chunk: Buffer) => {
        if (holding) return; // everything after the held COMMIT is dropped with it
        fromClient = fromClient.length === 0 ? chunk : Buffer.concat([fromClient, chunk]);
        for (;;) {
          if (startup) {
            // The startup message has no type byte: int32 length, then the body.
            if (fromClient.length < 4) return;
            const total = fromClient.readInt32BE(0);
            if (fromClient.length < total) return;
            upstream.write(fromClient.subarray(0, total));
            fromClient = fromClient.subarray(total);
            startup = false;
            continue;
          }
          if (fromClient.length < 5) return;
          const total = 1 + fromClient.readInt32BE(1);
          if (fromClient.length < total) return;
          const message = fromClient.subarray(0, total);
          fromClient = fromClient.subarray(total);
          if (message[0] === 0x51 /* Q */) {
            const sql = message
              .subarray(5, total - 1)
              .toString("utf8")
              .trim()
              .toUpperCase();
            const isCommit = /^(COMMIT|END)\s*;?$/.test(sql);
            if (isCommit && armed && claimed.length > 0) {
              holding = true;
              const resolve = armed;
              armed = undefined;
              resolve({ messageIds: claimed, at: Date.now() });
              return;
            }
            // A new transaction (BEGIN alone or with the claim in one round trip), or the end of one.
            if (isCommit || /^(BEGIN|START TRANSACTION|ROLLBACK)\b/.test(sql)) claimed = [];
          }
          upstream.write(message);
        }
      });
    },
  );
  return {
    url: proxy.url,
    arm() {
      return new Promise((resolve) => {
        armed = resolve;
      });
    },
    get connections() {
      return proxy.connections;
    },
    close: proxy.close,
  };
}

/** Index of the column named `name` in a RowDescription body, or -1. */
function columnIndex(body: Buffer, name: string): number {
  const fields = body.readInt16BE(0);
  let offset = 2;
  for (let i = 0; i < fields; i++) {
    const end = body.indexOf(0, offset);
    if (body.toString("utf8", offset, end) === name) return i;
    offset = end + 1 + 18; // table oid, column attnum, type oid, type size, type modifier, format code
  }
  return -1;
}

/** The text of column `index` of a DataRow body (text format), or undefined for NULL. */
function dataRowColumn(body: Buffer, index: number): string | undefined {
  const columns = body.readInt16BE(0);
  let offset = 2;
  for (let i = 0; i < columns && i <= index; i++) {
    const length = body.readInt32BE(offset);
    offset += 4;
    if (i === index) return length < 0 ? undefined : body.toString("utf8", offset, offset + length);
    if (length > 0) offset += length;
  }
  return undefined;
}

// The scenarios take everything from this module: the shared helpers it builds on, too.
export { type Exit, killAll, killProc, type Proc, spawnTsx, useProcessCleanup } from "../support/process-harness.js";
export { outboxCount } from "../support/tables.js";
export { sleep, waitUntil } from "../support/wait.js";
