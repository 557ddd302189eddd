// Publish and flow control: one publish() call is a Batch with its own deadline and abort, sent on the current lane.
//
// States of a batch:
//
//   waiting ──connected, lane open──▶ checking exchanges ──lane still open──▶ sending ──every confirm──▶ settled
//     ▲                                     │                                   │
//     └──connection lost during the checks──┘        (nothing sent yet: wait)   ├──lane or connection lost──▶ rejected
//                                                                               │   (some messages may have arrived)
//   any state ──timeoutMs passed, signal aborted, transport closed──▶ rejected ◀┘
//
// - publish() sends only in `connected` with a lane open; in any other state, and while the lane is being reopened,
//   it waits (within its timeoutMs and signal). A batch still waiting for the connection or checking its exchanges
//   waits for the next connection instead of failing: nothing of it was sent.
// - Flow control: while `blocked` (a RabbitMQ resource alarm) and while the socket is full (`publish` returned
//   false, until 'drain') it sends nothing more, so nothing piles up in memory.
// - Messages to an exchange the cache found missing get `{ ok: false }` without being sent; the others go out.
import type { Options } from "amqplib";
import { expectNumber, MAX_TIMER_MS } from "../../config/validate.js";
import { OutboxPublishError } from "../../errors.js";
import type { OutboundMessage, PublishOptions, PublishOutcome } from "../transport.js";
import type { InFlight, Lane } from "./channel.js";
import type { AmqpConnection, Link } from "./connection.js";
import { abortable } from "./helpers.js";
import type { Scrubber } from "./options.js";

/** One publish() call: its deadline, its abort, and the reason it was given up. */
export class Batch implements InFlight {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  lane: Lane | undefined;

  constructor(
    timeoutMs: number,
    private readonly external: AbortSignal | undefined,
    private readonly registry: Set<Batch>,
  ) {
    this.timer = setTimeout(
      () =>
        this.abort(
          new OutboxPublishError(`publish timed out after ${timeoutMs} ms before every confirm arrived`, {
            reason: "timeout",
          }),
        ),
      timeoutMs,
    );
    registry.add(this);
    if (external?.aborted) this.onExternalAbort();
    else external?.addEventListener("abort", this.onExternalAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  abort(reason: Error): void {
    if (!this.signal.aborted) this.controller.abort(reason);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.external?.removeEventListener("abort", this.onExternalAbort);
    this.registry.delete(this);
    this.lane?.batches.delete(this);
  }

  private readonly onExternalAbort = () => {
    this.abort(new OutboxPublishError("publish aborted", { cause: this.external?.reason, reason: "aborted" }));
  };
}

/** Publishes one batch on the connection; see the state machine above. `batches` holds every batch in flight. */
export async function publishBatch(
  connection: AmqpConnection,
  scrubber: Scrubber,
  batches: Set<Batch>,
  messages: OutboundMessage[],
  { timeoutMs, signal }: PublishOptions,
): Promise<PublishOutcome[]> {
  expectNumber("timeoutMs", timeoutMs, { min: 1, max: MAX_TIMER_MS });
  if (connection.isClosed()) throw new OutboxPublishError("transport closed", { reason: "closed" });
  if (messages.length === 0) return [];
  const batch = new Batch(timeoutMs, signal, batches);
  try {
    for (;;) {
      const { link, lane } = await ready(connection, batch);
      const missing = await abortable(link.exchanges.missing(messages), batch.signal).catch((error: unknown) => {
        // Nothing was sent yet: a connection lost during the checks is waited out like any other.
        if (link.lost) return undefined;
        throw error;
      });
      // The lane may have closed during the checks: wait for the next one.
      if (missing && !lane.closed) return await send(connection, scrubber, link, lane, messages, missing, batch);
    }
  } catch (thrown) {
    if (thrown instanceof OutboxPublishError) throw thrown;
    const error = scrubber.scrub(thrown);
    throw new OutboxPublishError(`publish failed: ${error.message}`, { cause: error });
  } finally {
    batch.dispose();
  }
}

async function ready(connection: AmqpConnection, batch: Batch): Promise<{ link: Link; lane: Lane }> {
  for (;;) {
    const link = connection.link;
    const lane = link?.lane;
    if (link && lane && connection.state === "connected") return { link, lane };
    await connection.changes.next(batch.signal);
  }
}

function send(
  connection: AmqpConnection,
  scrubber: Scrubber,
  link: Link,
  lane: Lane,
  messages: OutboundMessage[],
  missing: Set<string>,
  batch: Batch,
): Promise<PublishOutcome[]> {
  return new Promise((resolve, reject) => {
    const outcomes = new Array<PublishOutcome>(messages.length);
    let pending = messages.length;
    const settle = (index: number, outcome: PublishOutcome) => {
      outcomes[index] = outcome;
      if (--pending === 0) resolve(outcomes);
    };
    batch.signal.addEventListener("abort", () => reject(batch.signal.reason), { once: true });
    batch.lane = lane;
    lane.batches.add(batch);

    const write = async () => {
      for (const [index, message] of messages.entries()) {
        if (missing.has(message.exchange)) {
          const error = new OutboxPublishError(
            `exchange \`${message.exchange}\` does not exist (NOT_FOUND 404): message ${message.messageId} was not published`,
          );
          settle(index, { ok: false, error });
          continue;
        }
        while (lane.full || link.blocked !== undefined) {
          if (lane.closed) return;
          await connection.changes.next(batch.signal);
        }
        if (lane.closed || batch.signal.aborted) return;
        try {
          const sent = lane.channel.publish(
            message.exchange,
            message.routingKey,
            message.body,
            publishOptions(message),
            (error: unknown) => {
              // A lost lane fails every callback; its close listener has rejected the batches already.
              if (lane.closed) return;
              settle(index, lane.outcome(message, error));
            },
          );
          if (!sent) lane.full = true;
        } catch (thrown) {
          const error = scrubber.scrub(thrown);
          if (lane.closed) return;
          if (error.name === "IllegalOperationError") {
            // The connection is closing: its close event is coming.
            batch.abort(
              new OutboxPublishError(`connection lost before every confirm arrived: ${error.message}`, {
                reason: "connection-lost",
              }),
            );
            return;
          }
          // Not sent at all (e.g. headers too large to encode): only this message failed.
          settle(index, {
            ok: false,
            error: new OutboxPublishError(`message ${message.messageId} could not be sent: ${error.message}`, {
              cause: error,
            }),
          });
        }
      }
    };
    write().catch(reject);
  });
}

/** Persistent and mandatory (a message no queue takes comes back as a return instead of vanishing). */
function publishOptions(message: OutboundMessage): Options.Publish {
  const options: Options.Publish = {
    persistent: true,
    mandatory: true,
    messageId: message.messageId,
    timestamp: Math.floor(message.createdAt / 1000),
    contentType: "application/json",
  };
  if (message.type !== undefined) options.type = message.type;
  if (message.correlationId !== undefined) options.correlationId = message.correlationId;
  if (message.headers !== undefined) options.headers = message.headers;
  // A string of ms, as AMQP 0-9-1 wants it; at least 1 (RabbitMQ reads "0" as: deliver now or drop).
  if (message.expiration !== undefined) options.expiration = String(Math.max(1, Math.ceil(message.expiration)));
  return options;
}
