// Options of `inbox()`: typed, documented, defaulted and validated in one place.

import {
  durationOption,
  enumOption,
  exchangesOption,
  expectString,
  functionOption,
  integerOption,
  rejectUnknownKeys,
  schemaOption,
} from "../config/validate.js";
import { OutboxConfigError } from "../errors.js";
import { type DoctorThresholds, doctorThresholdsOption } from "../ops/doctor-options.js";
import { type Logger, loggerOption } from "../runtime/logger.js";
import type { KeyAfterDead } from "../sql/inbox/claim.js";
import type { ExchangeSpec, QueueSpec } from "../transport/transport.js";
import { shortString } from "./handler-options.js";
import { type InboxQueueSpec, type ResolvedPartitions, resolvePartitions } from "./partition-options.js";
import type { HandlerSpec, InboxMessage } from "./types.js";

/**
 * What a delivery that cannot be handled becomes: no messageId, a body that is not JSON or over `maxPayloadBytes`, no
 * handler for it, or a value PostgreSQL cannot store (a NUL character, JSON nested too deep, a row it refuses).
 */
export type InvalidMessagePolicy = "dead" | "reject";

export interface InboxOptions<TMessages, TClient, TTx> {
  /** Your Prisma client (extended with `outbox()` or not): handlers run in its interactive transactions. */
  prisma: TClient;
  /**
   * The durable queue to consume, asserted at start with its arguments and bindings; or, with `partitions`, N partition
   * queues shared by every inbox process on it (partition-options.ts, docs/scaling.md#partitioned-inbox-queues).
   */
  queue: InboxQueueSpec;
  /** Exchanges to assert before binding the queue. @defaultValue [] */
  exchanges?: ExchangeSpec[];
  /** Handlers by name. The name is part of the deduplication key: keep it stable. */
  handlers: Record<string, HandlerSpec<TMessages, TTx>>;
  /**
   * Unacknowledged deliveries the broker sends at once; also the largest receive batch (one INSERT, one ack). It
   * must cover what arrives during one INSERT round trip plus the ack's way back, or the broker waits on the inbox:
   * 200 capped receiving at about a third of what the broker and the database each allow (bench:inbox (b)).
   * @defaultValue 1000
   */
  prefetch?: number;
  /**
   * Largest body, in bytes, the inbox stores and handles: a larger delivery is invalid (`invalidMessages`: stored
   * dead with the reason and without its body, or rejected), and its body is let go as soon as it arrives. What the
   * inbox holds in memory is at most `prefetch` x this (unacknowledged deliveries): lower `prefetch` for large bodies.
   * @defaultValue 1_048_576 (1 MiB, the outbox's `maxPayloadBytes`)
   */
  maxPayloadBytes?: number;
  /**
   * Most body bytes in one receive batch (one INSERT): deliveries beyond it go into the next batch (a larger single
   * delivery goes alone). Bounds the statement the receiver builds and PostgreSQL parses (two are in flight at once).
   * @defaultValue 4_194_304 (4 MiB, the relay's `batchMaxBytes`)
   */
  batchMaxBytes?: number;
  /** Handler transactions in flight at once (each holds a connection of your Prisma client). @defaultValue 4 */
  concurrency?: number;
  /** Attempts (started, so a crash counts) before a message is dead. @defaultValue 10 */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt with jitter, up to `retryMaxDelayMs`. @defaultValue 1_000 */
  retryBaseDelayMs?: number;
  /** Longest retry delay. @defaultValue 300_000 (5 minutes) */
  retryMaxDelayMs?: number;
  /**
   * Longest run of one handler; past it its transaction rolls back, its signal aborts, and the attempt fails.
   * @defaultValue 30_000
   */
  handlerTimeoutMs?: number;
  /**
   * A claim leases its row for `handlerTimeoutMs` + this margin (room for the transaction to start and commit). A
   * process that dies holding rows delays them by up to the whole lease: a smaller margin brings them back sooner.
   * Keep it well above your database's worst transaction start + commit time (a lease that runs out under a running
   * handler makes its commit fail the lease guard and roll back: never a double effect, but a wasted attempt).
   * @defaultValue 15_000
   */
  leaseMarginMs?: number;
  /** How often the sweeper claims due rows (retries, and what a crash left behind). @defaultValue 1_000 */
  sweepIntervalMs?: number;
  /**
   * How long processed rows stay as dedupe records: a duplicate arriving later is handled again.
   * @defaultValue 604_800_000 (7 days)
   */
  retentionMs?: number;
  /** How often expired dedupe records are deleted, in batches of `purgeBatchSize`. @defaultValue 60_000 */
  purgeIntervalMs?: number;
  /** Dedupe records deleted per statement. @defaultValue 1_000 */
  purgeBatchSize?: number;
  /**
   * A delivery without a messageId, with a body that is not JSON or over `maxPayloadBytes`, that no handler takes, or
   * that PostgreSQL cannot store (a NUL character in its messageId, type, correlationId or a header; JSON nested
   * deeper than PostgreSQL parses; any row a batch INSERT fails on, found by splitting the batch): `"dead"` stores it
   * in the inbox table as dead with the reason, its body kept as bytes where PostgreSQL can hold them (nothing is
   * lost, even without a dead-letter exchange); `"reject"` rejects it without requeue, so the queue's dead-letter
   * exchange (`x-dead-letter-exchange`) gets it. Logged either way.
   * @defaultValue "dead"
   */
  invalidMessages?: InvalidMessagePolicy;
  /**
   * How long a delivery that no handler of this inbox takes waits, pending and without spending attempts, for an
   * inbox of the same queue that has a handler for it (a newer version, during a rolling deploy); then it is dead
   * (event `dead-lettered`, reason "unhandled"). 0: dead at once, as `invalidMessages` says. Give every inbox of the
   * queue the same. docs/inbox.md#rolling-deploys
   * @defaultValue 0
   */
  unhandledGraceMs?: number;
  /**
   * What the later messages of an ordering key (header x-ordering-key) do for a handler once one of them is dead for
   * it: `"stop"`: they wait while it is dead (retry it, or delete it, and the key goes on); `"continue"`: they are
   * handled, with a gap. Every inbox on the same table must be given the same. docs/ordering.md. The relay's option
   * of the same name.
   * @defaultValue "stop"
   */
  keyAfterDeadLetter?: KeyAfterDead;
  /** @deprecated Use `keyAfterDeadLetter` (the relay's name); this one is accepted for one more release. */
  keyAfterDead?: KeyAfterDead;
  /**
   * Whether a handler's error is worth another attempt; `false` makes the message dead at once (its `dead` hook runs as
   * for a last attempt; event `dead-lettered` with reason "non-retryable"). A NonRetryableError (or one in the `cause`
   * chain) is never retried, whatever this says. A predicate that throws counts as `true`. The relay's option of the
   * same name does the same for publish refusals. docs/inbox.md#errors-that-should-not-be-retried
   * @defaultValue every error but a NonRetryableError is retried up to `maxAttempts`
   */
  isRetryable?: (error: Error, message: InboxMessage) => boolean;
  /** How long `stop()` lets handlers finish before aborting them (they roll back). @defaultValue 10_000 */
  stopTimeoutMs?: number;
  /**
   * The PostgreSQL schema of the inbox table (`inbox_message`): where Prisma created it (the `?schema=` of the
   * migration's URL, or `@@schema`). Every inbox on the same table must be given the same.
   * @defaultValue "public"
   */
  schema?: string;
  /**
   * How often the inbox runs the doctor's cheap checks (the relay's option of the same name: docs/operating.md#doctor)
   * on its table, plus its own receiver stall; 0 turns them off. @defaultValue 60_000
   */
  doctorIntervalMs?: number;
  /** The thresholds of those checks (`doctor()`'s options of the same names). @defaultValue doctor()'s defaults */
  doctorThresholds?: DoctorThresholds;
  /** @defaultValue warnings and errors on stderr */
  logger?: Logger;
}

export interface ResolvedInboxOptions {
  queue: Required<QueueSpec>;
  /** Set for a partitioned queue. */
  partitions: ResolvedPartitions | undefined;
  exchanges: ExchangeSpec[];
  prefetch: number;
  maxPayloadBytes: number;
  batchMaxBytes: number;
  concurrency: number;
  maxAttempts: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  handlerTimeoutMs: number;
  leaseMarginMs: number;
  sweepIntervalMs: number;
  retentionMs: number;
  purgeIntervalMs: number;
  purgeBatchSize: number;
  invalidMessages: InvalidMessagePolicy;
  unhandledGraceMs: number;
  keyAfterDead: KeyAfterDead;
  isRetryable: ((error: Error, message: InboxMessage) => boolean) | undefined;
  stopTimeoutMs: number;
  schema: string;
  doctorIntervalMs: number;
  doctorThresholds: DoctorThresholds;
  logger: Logger;
  /**
   * @internal Not an option of `inbox()`: false only in tests that show the loop detection and the broker-side defence
   * at work, as they would with an amqplib the header guard does not know (transport/amqp/header-guard.ts).
   */
  guardHeaders: boolean;
}

/** Every option of inbox(), and the hidden `guardHeaders`: any other key is refused. */
const INBOX_OPTION_KEYS = {
  prisma: true,
  queue: true,
  exchanges: true,
  handlers: true,
  prefetch: true,
  maxPayloadBytes: true,
  batchMaxBytes: true,
  concurrency: true,
  maxAttempts: true,
  retryBaseDelayMs: true,
  retryMaxDelayMs: true,
  handlerTimeoutMs: true,
  leaseMarginMs: true,
  sweepIntervalMs: true,
  retentionMs: true,
  purgeIntervalMs: true,
  purgeBatchSize: true,
  invalidMessages: true,
  unhandledGraceMs: true,
  keyAfterDeadLetter: true,
  keyAfterDead: true,
  isRetryable: true,
  stopTimeoutMs: true,
  logger: true,
  schema: true,
  doctorIntervalMs: true,
  doctorThresholds: true,
  guardHeaders: true,
} satisfies Record<keyof InboxOptions<unknown, unknown, unknown> | "guardHeaders", true>;

/** `keyAfterDeadLetter`, or its deprecated name `keyAfterDead` (not both with different values). */
function keyAfterDeadLetterOption(options: InboxOptions<unknown, unknown, unknown>): KeyAfterDead {
  const { keyAfterDeadLetter, keyAfterDead } = options;
  if (keyAfterDeadLetter !== undefined && keyAfterDead !== undefined && keyAfterDeadLetter !== keyAfterDead) {
    throw new OutboxConfigError(
      "Expected `keyAfterDeadLetter` or its deprecated name `keyAfterDead`, not both with different values.",
    );
  }
  const name = keyAfterDeadLetter === undefined && keyAfterDead !== undefined ? "keyAfterDead" : "keyAfterDeadLetter";
  const value = keyAfterDeadLetter ?? keyAfterDead ?? "stop";
  if (value !== "stop" && value !== "continue") {
    throw new OutboxConfigError(`Expected \`${name}\` to be "stop" or "continue", got ${JSON.stringify(value)}.`);
  }
  return value;
}

export function resolveInboxOptions(options: InboxOptions<unknown, unknown, unknown>): ResolvedInboxOptions {
  if (typeof options !== "object" || options === null) {
    throw new OutboxConfigError("Expected inbox() options to be an object.");
  }
  rejectUnknownKeys("inbox()", options, Object.keys(INBOX_OPTION_KEYS));
  const prisma = options.prisma as { $transaction?: unknown; $executeRawUnsafe?: unknown } | undefined;
  if (typeof prisma?.$transaction !== "function" || typeof prisma.$executeRawUnsafe !== "function") {
    throw new OutboxConfigError("Expected `prisma` to be your Prisma client (handlers run in its transactions).");
  }
  const queue = options.queue as InboxQueueSpec | undefined;
  if (typeof queue !== "object" || queue === null) {
    throw new OutboxConfigError("Expected `queue` to be { name, arguments?, bindings? }.");
  }
  shortString(queue.name, "queue.name");
  const args = queue.arguments ?? {};
  if (typeof args !== "object" || args === null || Array.isArray(args)) {
    throw new OutboxConfigError("Expected `queue.arguments` to be an object of queue arguments.");
  }
  const bindings = queue.bindings ?? [];
  if (!Array.isArray(bindings)) throw new OutboxConfigError("Expected `queue.bindings` to be an array.");
  bindings.forEach((b, i) => {
    shortString(b?.exchange, `queue.bindings[${i}].exchange`);
    expectString(`queue.bindings[${i}].routingKey`, b.routingKey, { maxBytes: 255 });
    const bindingArgs = b.arguments;
    if (
      bindingArgs !== undefined &&
      (typeof bindingArgs !== "object" || bindingArgs === null || Array.isArray(bindingArgs))
    ) {
      throw new OutboxConfigError(
        `Expected \`queue.bindings[${i}].arguments\` to be an object (e.g. { "x-match": "all" }).`,
      );
    }
  });
  const exchanges = exchangesOption("exchanges", options.exchanges);
  const invalidMessages = enumOption("invalidMessages", options.invalidMessages, ["dead", "reject"], "dead");
  const keyAfterDead = keyAfterDeadLetterOption(options);
  const retryBaseDelayMs = durationOption("retryBaseDelayMs", options.retryBaseDelayMs, 1_000, 0);
  const retryMaxDelayMs = durationOption("retryMaxDelayMs", options.retryMaxDelayMs, 300_000, 0);
  if (retryMaxDelayMs < retryBaseDelayMs) {
    throw new OutboxConfigError(
      `Expected \`retryMaxDelayMs\` (${retryMaxDelayMs}) to be >= \`retryBaseDelayMs\` (${retryBaseDelayMs}).`,
    );
  }
  return {
    queue: { name: queue.name, arguments: args, bindings },
    partitions: resolvePartitions(queue),
    exchanges,
    prefetch: integerOption("prefetch", options.prefetch, 1_000, 1),
    maxPayloadBytes: integerOption("maxPayloadBytes", options.maxPayloadBytes, 1_048_576, 1),
    batchMaxBytes: integerOption("batchMaxBytes", options.batchMaxBytes, 4_194_304, 1_024),
    concurrency: integerOption("concurrency", options.concurrency, 4, 1),
    maxAttempts: integerOption("maxAttempts", options.maxAttempts, 10, 1),
    retryBaseDelayMs,
    retryMaxDelayMs,
    handlerTimeoutMs: durationOption("handlerTimeoutMs", options.handlerTimeoutMs, 30_000, 10),
    leaseMarginMs: durationOption("leaseMarginMs", options.leaseMarginMs, 15_000, 1_000),
    sweepIntervalMs: durationOption("sweepIntervalMs", options.sweepIntervalMs, 1_000, 10),
    retentionMs: integerOption("retentionMs", options.retentionMs, 7 * 24 * 3_600_000, 0),
    purgeIntervalMs: durationOption("purgeIntervalMs", options.purgeIntervalMs, 60_000, 10),
    purgeBatchSize: integerOption("purgeBatchSize", options.purgeBatchSize, 1_000, 1),
    invalidMessages,
    unhandledGraceMs: durationOption("unhandledGraceMs", options.unhandledGraceMs, 0, 0),
    keyAfterDead,
    isRetryable: functionOption("isRetryable", options.isRetryable),
    stopTimeoutMs: durationOption("stopTimeoutMs", options.stopTimeoutMs, 10_000, 0),
    schema: schemaOption("schema", options.schema),
    doctorIntervalMs: durationOption("doctorIntervalMs", options.doctorIntervalMs, 60_000, 0),
    doctorThresholds: doctorThresholdsOption("doctorThresholds", options.doctorThresholds),
    logger: loggerOption(options.logger, "inbox"),
    guardHeaders: (options as { guardHeaders?: unknown }).guardHeaders !== false,
  };
}
