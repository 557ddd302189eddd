// Rolling deploys: a delivery that no handler of this inbox takes (a new routing key or type, published by a newer
// version, reaching an inbox that still runs the older one) waits, with `unhandledGraceMs` > 0, for an inbox of the
// same queue that has a handler for it; no attempt is spent while it waits (docs/inbox.md#rolling-deploys).
//
// The waiting row: pending, under the queue's placeholder handler (waitingHandler()), attempts 0, due at the end of its
// grace (sql/inbox/insert.ts). No processor claims it: due claims take their own handlers' rows only.
// The pass (WaitingPass), in every inbox, on a timer (each sweepIntervalMs with a grace; each purgeIntervalMs without,
// for rows left by inboxes that had one), a pass at a time:
//   list the placeholder's waiting rows, oldest first, a page at a time -> the rows this inbox's handlers take are
//   moved to them, in one statement per page (each keeps its place in its key: sql/inbox/unhandled.ts) -> the rows
//   whose grace is over are made dead, reason "unhandled" (event `dead-lettered`, attempts 0).
// Moving comes before expiry: a row that an inbox can take is taken, even when its grace just ended.
// States: idle --start()--> timed --stop()--> stopped (the timer cleared, the pass in flight awaited).
import { createHash } from "node:crypto";
import type pg from "pg";
import { coerceError, InboxUnhandledError } from "../errors.js";
import type { Logger } from "../runtime/logger.js";
import {
  expireInboxWaitingSql,
  rerouteInboxSql,
  WAITING_PREFIX,
  type WaitingInboxRow,
  waitingInboxSql,
} from "../sql/inbox/unhandled.js";
import type { InboxNames } from "../sql/names.js";
import type { InboxEvent } from "./events.js";
import type { ResolvedInboxOptions } from "./options.js";
import type { HandlerRegistry } from "./registry.js";

export { WAITING_PREFIX } from "../sql/inbox/unhandled.js";

/** A part of the inbox on a timer of its own (this pass, retention). */
export interface Timed {
  start(): void;
  stop(): Promise<unknown>;
}

/** Waiting rows read per statement of a pass. */
const PAGE = 500;

/**
 * The placeholder handler of a queue's waiting rows: the prefix and the queue's name (scoped by queue: inboxes of
 * other queues on the same table neither take its rows nor collide with them on (message_id, handler)). A name that
 * does not fit the column (255 bytes) is replaced by its SHA-256.
 */
export function waitingHandler(queue: string): string {
  const name = `${WAITING_PREFIX}${queue}`;
  if (Buffer.byteLength(name) <= 255) return name;
  return `${WAITING_PREFIX}sha256:${createHash("sha256").update(queue).digest("hex")}`;
}

/** The reason a waiting row dies with. */
export function unhandledReason(graceMs: number): string {
  return `no handler took it within ${graceMs} ms (unhandledGraceMs): no inbox of this queue has a handler for its routing key or type`;
}

type WaitingOptions = Pick<
  ResolvedInboxOptions,
  "queue" | "unhandledGraceMs" | "sweepIntervalMs" | "purgeIntervalMs" | "logger"
>;

export interface WaitingPassDeps {
  pool: pg.Pool;
  registry: HandlerRegistry;
  names: InboxNames;
  options: WaitingOptions;
  emit(event: InboxEvent): void;
}

export class WaitingPass {
  readonly #deps: WaitingPassDeps;
  readonly #handler: string;
  readonly #graceMs: number;
  readonly #logger: Logger;
  readonly #sql: { list: string; move: string; expire: string };
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(deps: WaitingPassDeps) {
    this.#deps = deps;
    this.#handler = waitingHandler(deps.options.queue.name);
    this.#graceMs = deps.options.unhandledGraceMs;
    this.#logger = deps.options.logger;
    this.#sql = {
      list: waitingInboxSql(deps.names),
      move: rerouteInboxSql(deps.names),
      expire: expireInboxWaitingSql(deps.names),
    };
  }

  /** What the receiver stores a delivery no handler takes under, and for how long: with a grace only. */
  static receiving(options: WaitingOptions): { handler: string; graceMs: number } | undefined {
    const graceMs = options.unhandledGraceMs;
    return graceMs > 0 ? { handler: waitingHandler(options.queue.name), graceMs } : undefined;
  }

  start(): void {
    if (this.#timer) return;
    const { sweepIntervalMs, purgeIntervalMs } = this.#deps.options;
    this.#timer = setInterval(
      () => {
        this.#running ??= this.pass()
          .catch((thrown) => {
            this.#logger.warn("the pass over deliveries waiting for a handler failed; next try on the timer", {
              error: coerceError(thrown).message,
              code: (thrown as { code?: string }).code,
            });
          })
          .finally(() => {
            this.#running = undefined;
          });
      },
      this.#graceMs > 0 ? sweepIntervalMs : purgeIntervalMs,
    );
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  /** One pass: moves what this inbox's handlers take, then makes dead what waited past its grace. */
  async pass(): Promise<void> {
    const { pool, registry } = this.#deps;
    const logger = this.#logger;
    let moved = 0;
    for (let after = "0"; ; ) {
      const { rows } = await pool.query<WaitingInboxRow>(this.#sql.list, [this.#handler, PAGE, after]);
      const ids: string[] = [];
      const handlers: string[] = [];
      const first: boolean[] = [];
      for (const row of rows) {
        registry.match(row.routing_key, row.type ?? undefined).forEach((h, i) => {
          ids.push(row.id);
          handlers.push(h.name);
          first.push(i === 0);
        });
      }
      if (ids.length > 0)
        moved += (await pool.query(this.#sql.move, [this.#handler, ids, handlers, first])).rowCount ?? 0;
      if (rows.length < PAGE) break;
      after = rows.at(-1)!.id;
    }
    if (moved > 0) logger.info("deliveries that waited for a handler moved to this inbox's handlers", { rows: moved });
    const reason = unhandledReason(this.#graceMs);
    const { rows: dead } = await pool.query<{ id: string; message_id: string | null }>(this.#sql.expire, [
      this.#handler,
      reason,
    ]);
    if (dead.length === 0) return;
    logger.error("deliveries no handler took within unhandledGraceMs are dead", { rows: dead.length, reason });
    for (const row of dead) {
      const error = new InboxUnhandledError(reason, this.#graceMs);
      const messageId = row.message_id ?? "";
      const event = { messageId, handler: this.#handler, attempts: 0, error };
      this.#deps.emit({ type: "dead-lettered", ...event, reason: "unhandled" });
      this.#deps.emit({ type: "dead", ...event, attempt: 0 });
    }
  }
}
