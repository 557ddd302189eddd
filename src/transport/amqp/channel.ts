// The channel lifecycle: the one confirm channel of a connection (a "lane"), what is in flight on it, and what the
// broker says on it (confirms, returns, drain, close).
//
// States of a lane:
//
//   open ──publish() returned false (socket buffer full)──▶ full ──'drain'──▶ open
//     │                                                      │
//     └──────────────'close' (channel error, or the connection closing)──┴──▶ closed (final)
//
// - Batches share the lane: each message has its own confirm callback and each batch resolves when its own messages
//   are all confirmed, so concurrent batches never wait for each other (no waitForConfirms).
// - Unroutable messages: RabbitMQ sends basic.return before the basic.ack of the same message on the same channel,
//   so a returned messageId is remembered and that message's ack becomes `{ ok: false }`.
// - On close, before amqplib's own listener fails every pending confirm callback with "channel closed", every batch
//   in flight is aborted as lost (not as nacked): some of its messages may have reached the broker. The connection
//   (connection.ts) then opens a new lane, unless the whole connection is going.
// - Other channel errors a publish can cause (403: no write permission; 406: message too large) are not checked
//   beforehand: they close the lane and reject the whole batch with reason `channel-closed`; the relay then finds
//   the culprit (src/relay/batch.ts).
import type { ChannelModel, ConfirmChannel, Message, MessageFields } from "amqplib";
import { OutboxNackError, OutboxPublishError } from "../../errors.js";
import type { OutboundMessage, PublishOutcome } from "../transport.js";
import type { Scrubber } from "./options.js";

/** A batch in flight, as the lane sees it: something to abort when the lane is lost. */
export interface InFlight {
  abort(reason: Error): void;
}

interface LaneHooks {
  scrubber: Scrubber;
  /** The connection's error, when the lane closes because the connection did. */
  connectionError(): Error | undefined;
  /** The lane can take more messages ('drain'). */
  drained(): void;
  /** The lane closed; its batches have been aborted already. */
  closed(lane: Lane): void;
}

export class Lane {
  /** messageId => why the broker returned it, until that message's ack arrives. */
  readonly returned = new Map<string, string>();
  readonly batches = new Set<InFlight>();
  closed = false;
  /** `publish` returned false: wait for `drain` before sending more. */
  full = false;
  error: Error | undefined;

  constructor(readonly channel: ConfirmChannel) {}

  /** The outcome of one message whose confirm arrived: nacked, returned (unroutable) or delivered. */
  outcome(message: OutboundMessage, nack: unknown): PublishOutcome {
    if (nack) return { ok: false, error: new OutboxNackError(message.messageId, message.exchange, message.routingKey) };
    const returned = this.returned.get(message.messageId);
    if (returned === undefined) return { ok: true };
    this.returned.delete(message.messageId);
    return { ok: false, error: new OutboxPublishError(returned) };
  }
}

/** Opens a confirm channel on the connection and wires its events. */
export async function openLane(conn: ChannelModel, hooks: LaneHooks): Promise<Lane> {
  const lane = new Lane(await conn.createConfirmChannel());
  const { channel } = lane;
  channel.on("error", (error: unknown) => {
    lane.error = hooks.scrubber.scrub(error);
  });
  channel.on("return", (message: Message) => {
    const id: unknown = message.properties.messageId;
    const fields = message.fields as MessageFields & { replyCode?: number; replyText?: string };
    if (typeof id !== "string") return;
    lane.returned.set(
      id,
      `unroutable: exchange ${fields.exchange} routing key ${fields.routingKey} returned ${fields.replyText ?? "NO_ROUTE"} (${fields.replyCode ?? 312})`,
    );
  });
  channel.on("drain", () => {
    lane.full = false;
    hooks.drained();
  });
  // Before amqplib's own listener, which fails every pending confirm callback with "channel closed": the batches
  // must see a lost channel as such, not as nacks.
  channel.prependListener("close", () => {
    lane.closed = true;
    const cause = lane.error ?? hooks.connectionError();
    const error = new OutboxPublishError(
      `${lane.error ? "channel" : "connection"} lost before every confirm arrived${cause ? `: ${cause.message}` : ""}`,
      { cause, reason: lane.error ? "channel-closed" : "connection-lost" },
    );
    for (const batch of lane.batches) batch.abort(error);
    lane.batches.clear();
    lane.returned.clear();
    hooks.closed(lane);
  });
  return lane;
}
