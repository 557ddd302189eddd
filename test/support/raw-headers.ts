// Publishing a message whose header table is given as raw bytes, such as one nested ~9,000 deep: amqplib's encoder
// recurses too (codec.js encodeTable) and fills a fixed buffer, so the frames are written by hand here, as a hostile
// or buggy publisher would.
import type { Channel, ChannelModel } from "amqplib";

const FRAME_METHOD = 1;
const FRAME_HEADER = 2;
const FRAME_BODY = 3;
const FRAME_END = 0xce;

/** A field table of `depth` tables, each the only value of the one before (key "a"): 7 bytes a level. */
export function nestedHeaderTable(depth: number): Buffer {
  const out = Buffer.alloc(depth * 7);
  for (let level = 0; level < depth; level++) {
    const at = level * 7;
    out.writeUInt8(1, at);
    out.write("a", at + 1);
    out.write("F", at + 2);
    out.writeUInt32BE(out.length - at - 7, at + 3);
  }
  return out;
}

function frame(type: number, channel: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(7);
  head.writeUInt8(type, 0);
  head.writeUInt16BE(channel, 1);
  head.writeUInt32BE(payload.length, 3);
  return Buffer.concat([head, payload, Buffer.from([FRAME_END])]);
}

function shortString(text: string): Buffer {
  const bytes = Buffer.from(text);
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

/**
 * basic.publish + content header (headers: the raw table; persistent; messageId) + one body frame, written straight
 * to the socket of `model` for `channel` (a plain channel with nothing else in flight). Resolves once the broker has
 * taken it (a round trip on the same channel after it).
 */
export async function publishRawHeaders(
  model: ChannelModel,
  channel: Channel,
  exchange: string,
  routingKey: string,
  table: Buffer,
  messageId: string,
  body: Buffer,
): Promise<void> {
  const number = (channel as unknown as { ch: number }).ch;
  const method = Buffer.alloc(8);
  method.writeUInt16BE(60, 0); // class basic
  method.writeUInt16BE(40, 2); // method publish
  const publish = Buffer.concat([
    method.subarray(0, 6),
    shortString(exchange),
    shortString(routingKey),
    Buffer.from([0]),
  ]);
  const prefix = Buffer.alloc(14);
  prefix.writeUInt16BE(60, 0);
  prefix.writeBigUInt64BE(BigInt(body.length), 4);
  prefix.writeUInt16BE(0x2000 | 0x1000 | 0x0080, 12); // headers, deliveryMode, messageId
  const length = Buffer.alloc(4);
  length.writeUInt32BE(table.length);
  const header = Buffer.concat([prefix, length, table, Buffer.from([2]), shortString(messageId)]);
  const connection = (model as unknown as { connection: { sendBytes(bytes: Buffer): void } }).connection;
  connection.sendBytes(
    Buffer.concat([
      frame(FRAME_METHOD, number, publish),
      frame(FRAME_HEADER, number, header),
      frame(FRAME_BODY, number, body),
    ]),
  );
  await channel.checkExchange(exchange || "amq.direct");
}
