// A guard around amqplib's frame decoding, so that one delivery whose header table cannot be decoded is one bad
// message, not a dead connection.
//
// Why: amqplib decodes field tables recursively (lib/codec.js, decodeFields -> decodeFieldValue -> decodeFields). A
// header table nested ~9,000 deep is 63 KB, well inside RabbitMQ's frame_max, and overflows the stack (RangeError:
// Maximum call stack size exceeded). amqplib's accept loop turns any error thrown while reading a frame into a socket
// error (connection.js: acceptLoop -> 'frameError' -> onSocketError) and drops the connection; the broker puts the
// unacked message back at the head of the queue, and the next connection meets it first, forever. A malformed table
// (an unknown type tag, a length past the end) ends the same way.
//
// How, without forking amqplib: each consumer connection's `recvFrame` (an instance method that amqplib's accept loop
// looks up on the instance, and that calls itself through `this` after reading more bytes) is wrapped. When the bytes
// amqplib holds begin with a whole content header frame and decoding it throws, amqplib has already moved past that
// frame (it advances `rest` before decoding); the guard puts the same frame back without its header table (the other
// properties kept, messageId among them) and lets amqplib decode that instead, or, should that fail too, without any
// property. The channel then assembles the delivery as usual, with its delivery tag, and the consumer sees the mark
// (`undecodableReason`) and treats it as an invalid message: the inbox stores it as dead or rejects it to the
// dead-letter exchange (`invalidMessages`), and the deliveries behind it flow.
//
// Only content header frames are guarded: they are the only frames whose tables a publisher writes. Everything else
// (method frames, a frame larger than maxFrameSize, a bad frame end) fails as amqplib decides.
import type { ChannelModel } from "amqplib";

/** What amqplib's Connection exposes that the guard relies on (checked at run time: it is not public API). */
interface FrameReader {
  recvFrame(): unknown;
  rest: Buffer;
}

const FRAME_HEADER = 2;
const FRAME_END = 0xce;
/** type (1) + channel (2) + size (4). */
const FRAME_PREFIX = 7;
/** A content header payload: class id (2) + weight (2) + body size (8), then the property flags and fields. */
const HEADER_PREFIX = 12;
const BASIC_CLASS = 60;
const CONTENT_TYPE_FLAG = 0x8000;
const CONTENT_ENCODING_FLAG = 0x4000;
const HEADERS_FLAG = 0x2000;

/** Properties objects of deliveries whose header table could not be decoded, with the reason. */
const undecodable = new WeakMap<object, string>();

/** Why the delivery with these properties lost its header table, or undefined when it was decoded as sent. */
export function undecodableReason(properties: unknown): string | undefined {
  return typeof properties === "object" && properties !== null ? undecodable.get(properties) : undefined;
}

/**
 * Installs the guard on the connection behind `model`. False when amqplib's internals are not as expected (another
 * version): nothing is changed then, and an undecodable header drops the connection as amqplib does by itself.
 */
export function guardHeaderDecoding(model: ChannelModel): boolean {
  const connection = (model as unknown as { connection?: Partial<FrameReader> }).connection;
  if (!connection || typeof connection.recvFrame !== "function" || !Buffer.isBuffer(connection.rest)) return false;
  const original = connection.recvFrame;
  connection.recvFrame = function guardedRecvFrame(this: FrameReader): unknown {
    const rest = this.rest;
    const length = wholeHeaderFrame(rest);
    if (length === undefined) return original.call(this);
    try {
      return original.call(this);
    } catch (thrown) {
      // Not a decoding failure of this very frame (amqplib did not move past it): amqplib's own outcome stands.
      if (this.rest.length !== rest.length - length) throw thrown;
      const frame = rest.subarray(0, length);
      const after = this.rest;
      for (const substitute of [withoutHeaders(frame), withoutProperties(frame)]) {
        if (substitute === undefined) continue;
        this.rest = Buffer.concat([substitute, after]);
        try {
          const decoded = original.call(this) as { fields?: unknown };
          if (typeof decoded?.fields === "object" && decoded.fields !== null) {
            undecodable.set(decoded.fields, reasonOf(thrown));
          }
          return decoded;
        } catch {
          this.rest = after;
        }
      }
      throw thrown;
    }
  };
  return true;
}

/** The length of the content header frame (class basic) at the start of `bytes`, when it is there whole. */
function wholeHeaderFrame(bytes: Buffer): number | undefined {
  if (bytes.length < FRAME_PREFIX + HEADER_PREFIX + 2 || bytes[0] !== FRAME_HEADER) return undefined;
  const size = bytes.readUInt32BE(3);
  const length = FRAME_PREFIX + size + 1;
  if (size < HEADER_PREFIX + 2 || bytes.length < length || bytes[length - 1] !== FRAME_END) return undefined;
  if (bytes.readUInt16BE(FRAME_PREFIX) !== BASIC_CLASS) return undefined;
  return length;
}

/** The frame with its header table left out (flag cleared), or undefined when it has none or is malformed before it. */
function withoutHeaders(frame: Buffer): Buffer | undefined {
  const properties = frame.subarray(FRAME_PREFIX + HEADER_PREFIX, frame.length - 1);
  const flags = properties.readUInt16BE(0);
  if ((flags & HEADERS_FLAG) === 0) return undefined;
  let offset = 2;
  for (const flag of [CONTENT_TYPE_FLAG, CONTENT_ENCODING_FLAG]) {
    if ((flags & flag) === 0) continue;
    if (offset >= properties.length) return undefined;
    offset += 1 + properties[offset]!;
  }
  if (offset + 4 > properties.length) return undefined;
  const end = offset + 4 + properties.readUInt32BE(offset);
  if (end > properties.length) return undefined;
  const newFlags = Buffer.alloc(2);
  newFlags.writeUInt16BE(flags & ~HEADERS_FLAG);
  return headerFrame(frame, [newFlags, properties.subarray(2, offset), properties.subarray(end)]);
}

/** The frame with no property at all (flags 0): decodes whatever the rest was. */
function withoutProperties(frame: Buffer): Buffer {
  return headerFrame(frame, [Buffer.alloc(2)]);
}

/** A content header frame on the same channel, for the same class and body size, with these property bytes. */
function headerFrame(frame: Buffer, properties: Buffer[]): Buffer {
  const prefix = Buffer.from(frame.subarray(0, FRAME_PREFIX + HEADER_PREFIX));
  const size = HEADER_PREFIX + properties.reduce((sum, p) => sum + p.length, 0);
  prefix.writeUInt32BE(size, 3);
  return Buffer.concat([prefix, ...properties, Buffer.from([FRAME_END])]);
}

/** In our words only: the broker's bytes (which the error's message may quote) are untrusted. */
function reasonOf(thrown: unknown): string {
  if (thrown instanceof RangeError && /call stack/i.test(thrown.message)) {
    return "the header table is nested too deeply to decode (headers dropped)";
  }
  return "the header table is malformed and cannot be decoded (headers dropped)";
}
