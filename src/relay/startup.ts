// Start-up and the relay's resources: the database pool, the transport, the LISTEN session, the backlog probe and
// metrics, and the in-process queue's attachment.
//
// open() runs its steps in order: queue free, database pool and table, broker, LISTEN, then the queue attached. A
// step that fails, or stop() called during any step (the halt signal), closes what the earlier steps opened and
// open() rejects: a failed start leaves nothing running. close() closes whatever is open; it never rejects.
import type pg from "pg";
import { OutboxConfigError, OutboxError, OutboxStartError } from "../errors.js";
import { describePgError, type OwnedPool, openPool } from "../runtime/pg.js";
import { checkTableSql, UNDEFINED_TABLE } from "../sql/check-table.js";
import type { OutboxNames } from "../sql/names.js";
import { type BacklogRow, outboxBacklogGaugesSql } from "../sql/outbox/backlog.js";
import { hasKeyedRowsSql } from "../sql/outbox/claim.js";
import { BacklogProbe } from "../telemetry/backlog-probe.js";
import { RelayMetrics } from "../telemetry/metrics.js";
import type { Transport, TransportEvent } from "../transport/transport.js";
import type { BrokerGate } from "./broker-gate.js";
import type { RelayEvent } from "./events.js";
import { LISTEN_FAILING_HINT, type RelayRecord } from "./health.js";
import type { KeyedMode } from "./keyed-lanes.js";
import { LISTEN_FAILING_AFTER, OutboxListener } from "./listener.js";
import type { RelayConnections, ResolvedRelayOptions } from "./options.js";

/** How long a failed start() waits for what it opened to close. */
export const CLEANUP_WAIT_MS = 1_000;

/** Resolves when the promise settles or after `ms`, whichever comes first. */
export async function withDeadline(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise.catch(() => {}), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/** What start-up needs from the relay. */
export interface StartupInputs {
  options: ResolvedRelayOptions;
  connections: RelayConnections;
  names: OutboxNames;
  /** Aborted as soon as stop() begins: start-up gives up. */
  halt: AbortSignal;
  record: RelayRecord;
  keyed: KeyedMode;
  broker: BrokerGate;
  onTransportEvent: (event: TransportEvent) => void;
  /** A NOTIFY came. */
  onNotify: () => void;
  emit: (event: RelayEvent) => void;
  /** Everything but the queue is open: returns what takes the queue's ids. */
  opened: (resources: RelayResources) => (ids: string[]) => Promise<void>;
}

export class RelayResources {
  relayPool: OwnedPool | undefined;
  pool: pg.Pool | undefined;
  transport: Transport | undefined;
  listener: OutboxListener | undefined;
  probe: BacklogProbe | undefined;
  metrics: RelayMetrics | undefined;
  #stopTransportEvents: (() => void) | undefined;
  #detachQueue: (() => Promise<void>) | undefined;

  /** Opens everything, in order (see the top of this module); logs and closes everything when a step fails. */
  async open(inputs: StartupInputs): Promise<void> {
    const { options: o, connections, names, halt } = inputs;
    try {
      // Checked before anything is opened; attached only once running.
      if (o.queue?.attached) {
        throw new OutboxConfigError(
          "This outbox queue already has a relay attached: start one relay per queue (pass `queue: false` for a relay that only drains the table, or give each relay its own OutboxQueue).",
        );
      }
      this.relayPool = openPool(connections.database, {
        max: o.concurrency + (o.queue?.concurrency ?? 0) + 1,
        keepAlive: true,
        application_name: "prisma-outbox relay",
        // No statement_timeout / idle_in_transaction_session_timeout here: poolers refuse them as startup
        // parameters. Each claim sets them for its transaction (src/sql/outbox/transaction-timeouts.ts). A network that
        // swallows packets cannot hang a cycle either: these fail on the client's side.
        connectionTimeoutMillis: 10_000,
        query_timeout: o.publishTimeoutMs + 10_000,
      });
      const pool = this.relayPool.pool;
      this.pool = pool;
      inputs.keyed.on = await haltable(halt, "connecting to the database", checkDatabase(pool, inputs));
      inputs.record.database = { connected: true };
      const backlogSql = outboxBacklogGaugesSql(names);
      const probe = new BacklogProbe(async () => (await pool.query<BacklogRow>(backlogSql)).rows[0]!);
      this.probe = probe;
      // Taken here, not at construction: an app registers its MeterProvider before start() (telemetry/metrics.ts).
      this.metrics = new RelayMetrics(() => probe.read());
      let transport: Transport;
      if (o.transport) {
        transport = o.transport;
        transport.useExchanges?.(o.exchanges);
      } else {
        const { AmqpTransport } = await import("../transport/amqp.js");
        if (halt.aborted) throw stoppedWhileStarting("loading the transport");
        transport = new AmqpTransport({ url: connections.amqpUrl!, exchanges: o.exchanges });
      }
      this.transport = transport;
      this.#stopTransportEvents = transport.onEvent(inputs.onTransportEvent);
      await haltable(halt, "connecting to the broker", transport.start());
      inputs.broker.started();
      if (o.listen) {
        this.listener = new OutboxListener(
          { source: connections.listen, names, checkIntervalMs: o.listenCheckIntervalMs },
          {
            onNotify: inputs.onNotify,
            onReconnecting: (attempt, delayMs, error) => {
              const { message, code, permanent } = describePgError(error);
              // Lost again and again (a wrong listenUrl, a pooler): the fast path is gone, say so as an error, with
              // what to do.
              const failing = attempt >= LISTEN_FAILING_AFTER;
              o.logger[permanent || failing ? "error" : "warn"]("LISTEN connection lost; reconnecting", {
                attempt,
                delayMs,
                error: message,
                ...(code ? { code } : {}),
                ...(failing ? { hint: LISTEN_FAILING_HINT } : {}),
              });
              inputs.emit({ type: "listen-reconnecting", attempt, delayMs, error });
            },
          },
        );
        await haltable(halt, "LISTEN", this.listener.start());
      }
      const consume = inputs.opened(this);
      this.#detachQueue = o.queue?.attach(consume, () => {});
    } catch (error) {
      const { message, code } = describePgError(error);
      if (halt.aborted) o.logger.info("relay stopped while starting", { error: message });
      else o.logger.error("relay could not start", { error: message, ...(code ? { code } : {}) });
      // A connection attempt still under way (a database or broker that does not answer) is closed by its own
      // timeout when it ends: start() does not wait for that.
      await withDeadline(this.close(), CLEANUP_WAIT_MS);
      throw error;
    }
  }

  /** Ends the queue's attachment and the LISTEN session: no new work comes in. */
  stopIntake(): Promise<unknown> {
    return Promise.all([this.#detachQueue?.(), this.listener?.close()]);
  }

  /** Closes everything open. Never rejects. */
  async close(): Promise<void> {
    this.#stopTransportEvents?.();
    this.metrics?.close();
    await Promise.allSettled([
      this.#detachQueue?.(),
      this.listener?.close(),
      this.transport?.close(),
      this.relayPool?.close(),
    ]);
  }
}

function stoppedWhileStarting(step: string): OutboxError {
  return new OutboxError(`The relay was stopped while it was starting (${step}).`);
}

/**
 * One step of start(): rejects as soon as stop() is called, without waiting for the step (a database that does not
 * answer holds a connection attempt for connectionTimeoutMillis); what the step opened is closed by open().
 */
async function haltable<T>(halt: AbortSignal, step: string, work: Promise<T>): Promise<T> {
  work.catch(() => {}); // abandoned when halted: its failure is expected
  let onHalt!: () => void;
  const halted = new Promise<never>((_, reject) => {
    onHalt = () => reject(stoppedWhileStarting(step));
    if (halt.aborted) onHalt();
    else halt.addEventListener("abort", onHalt, { once: true });
  });
  halted.catch(() => {});
  try {
    return await Promise.race([work, halted]);
  } finally {
    halt.removeEventListener("abort", onHalt);
  }
}

/**
 * Fails start() with a message that says what to do when the database refuses, does not answer, or lacks the outbox
 * table; and opens the pool's connections now, so that the first messages do not pay for connection set-up. Once
 * running, the same failures are retried (and logged). Resolves with whether the table holds keyed rows.
 */
async function checkDatabase(pool: pg.Pool, inputs: StartupInputs): Promise<boolean> {
  const { options, connections, names } = inputs;
  // The app's pool gets asked for one client only: it may allow fewer than `concurrency`, and holding them all here
  // would wait forever for a client that nobody releases.
  const warm = connections.database.kind === "pool" ? 1 : options.concurrency;
  const clients = await Promise.allSettled(Array.from({ length: warm }, () => pool.connect()));
  try {
    const first = clients.find((c) => c.status === "fulfilled");
    if (!first) {
      const reason = (clients[0] as PromiseRejectedResult).reason;
      const { message, code, permanent } = describePgError(reason);
      const where = options.database;
      if (permanent) {
        throw new OutboxConfigError(
          `The database (${where}) refused the relay: ${message}; check the user, password and database name of \`databaseUrl\` (or \`database\`).`,
          { cause: reason },
        );
      }
      throw new OutboxStartError(`Could not connect to the database (${where}): ${message}.`, {
        cause: reason,
        code,
      });
    }
    await first.value.query(checkTableSql(names)).catch((error: { code?: string }) => {
      if (error.code !== UNDEFINED_TABLE) throw error;
      const { schema } = names;
      throw new OutboxConfigError(
        `The table outbox_message does not exist in schema "${schema}" of the database (${options.database}): ` +
          "add prisma-outbox's model (prisma/outbox.prisma) to your Prisma schema and run `prisma migrate dev` " +
          "(or `prisma migrate deploy`), or set `schema` to the schema that holds it.",
      );
    });
    return (await first.value.query<{ keyed: boolean }>(hasKeyedRowsSql(names))).rows[0]!.keyed;
  } finally {
    for (const c of clients) if (c.status === "fulfilled") c.value.release();
  }
}
