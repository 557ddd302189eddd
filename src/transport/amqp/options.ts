// Validation and redaction: the AMQP transport's options, checked once at construction, and the scrubber that keeps
// the URL's password out of every error and event the transport lets out.
//
// amqplib and the socket put the URL they were given into some of their messages (connection refused to ...,
// handshake errors). So every error coming from them is copied with the URL and the password replaced, and the
// original is not kept as `cause` (it would carry the password along).
import type { SocketOptions } from "amqplib";
import { redactUrl, scrubSecrets } from "../../config/redact.js";
import { exchangesOption, expectNumber, expectUrl, MAX_TIMER_MS, rejectUnknownKeys } from "../../config/validate.js";
import { coerceError, OutboxConfigError, OutboxError } from "../../errors.js";
import type { ExchangeSpec } from "../transport.js";

/** Delays between connection attempts: full jitter over an exponential backoff, capped. */
export interface AmqpReconnectOptions {
  /** First delay, in ms. @defaultValue 100 */
  initialDelayMs?: number | undefined;
  /** Longest delay, in ms. @defaultValue 10_000 */
  maxDelayMs?: number | undefined;
}

export interface AmqpTransportOptions {
  /** `amqp://user:password@host:port/vhost` or `amqps://...`; its password is never shown. */
  url: string;
  /** Exchanges asserted at every (re)connection. @defaultValue [] */
  exchanges?: ExchangeSpec[] | undefined;
  /** AMQP heartbeat, which notices a silently dead connection; 0 disables it. @defaultValue 10 */
  heartbeatSeconds?: number | undefined;
  /**
   * Delays between connection attempts: full jitter over an exponential backoff from `initialDelayMs`, capped at
   * `maxDelayMs`.
   * @defaultValue { initialDelayMs: 100, maxDelayMs: 10_000 }
   */
  reconnect?: AmqpReconnectOptions | undefined;
  /**
   * Give up one connection attempt (TCP and AMQP handshake) after this long; also how long close() waits for the
   * broker to answer before dropping the socket. @defaultValue 10_000
   */
  connectTimeoutMs?: number | undefined;
  /**
   * Passed to amqplib's `connect`: TLS options, `keepAlive`, `clientProperties`, `noDelay`... (`timeout` is
   * `connectTimeoutMs`).
   * @defaultValue { clientProperties: { connection_name: "prisma-outbox" }, noDelay: true }
   */
  socketOptions?: SocketOptions | undefined;
}

export interface ResolvedAmqpOptions {
  /** The URL given, with the heartbeat added: what amqplib connects to. */
  connectUrl: string;
  exchanges: ExchangeSpec[];
  initialDelayMs: number;
  maxDelayMs: number;
  connectTimeoutMs: number;
  socketOptions: SocketOptions;
  scrubber: Scrubber;
}

/** Every option of new AmqpTransport(): any other key is refused (a misspelt option would be ignored). */
const AMQP_OPTION_KEYS = {
  url: true,
  exchanges: true,
  heartbeatSeconds: true,
  reconnect: true,
  connectTimeoutMs: true,
  socketOptions: true,
} satisfies Record<keyof AmqpTransportOptions, true>;

export function resolveAmqpOptions(options: AmqpTransportOptions): ResolvedAmqpOptions {
  if (typeof options !== "object" || options === null) {
    throw new OutboxConfigError("Expected AmqpTransport options to be an object with a `url`.");
  }
  rejectUnknownKeys("new AmqpTransport()", options, Object.keys(AMQP_OPTION_KEYS));
  const { url, heartbeatSeconds = 10, reconnect = {}, connectTimeoutMs = 10_000 } = options;
  if (typeof reconnect !== "object" || reconnect === null) {
    throw new OutboxConfigError("Expected `reconnect` to be { initialDelayMs?, maxDelayMs? }.");
  }
  rejectUnknownKeys("reconnect", reconnect, ["initialDelayMs", "maxDelayMs"]);
  const { initialDelayMs = 100, maxDelayMs = 10_000 } = reconnect;
  const parsed = expectUrl("url", url, ["amqp:", "amqps:"]);
  const exchanges = exchangesOption("exchanges", options.exchanges);
  expectNumber("heartbeatSeconds", heartbeatSeconds, { min: 0, max: 3600, integer: true });
  expectNumber("reconnect.initialDelayMs", initialDelayMs, { min: 1, max: MAX_TIMER_MS });
  expectNumber("reconnect.maxDelayMs", maxDelayMs, { min: initialDelayMs, max: MAX_TIMER_MS });
  expectNumber("connectTimeoutMs", connectTimeoutMs, { min: 1, max: MAX_TIMER_MS });

  if (!parsed.searchParams.has("heartbeat")) parsed.searchParams.set("heartbeat", String(heartbeatSeconds));
  const connectUrl = parsed.toString();
  return {
    connectUrl,
    exchanges,
    initialDelayMs,
    maxDelayMs,
    connectTimeoutMs,
    socketOptions: {
      clientProperties: { connection_name: "prisma-outbox" },
      // amqplib leaves Nagle's algorithm on unless told: a small frame (a publish, an ack) written while an earlier
      // one is unacknowledged waits for the peer's TCP ACK, which a delayed ACK holds up to 40 ms (docs/performance.md).
      noDelay: true,
      ...options.socketOptions,
      timeout: connectTimeoutMs,
    },
    scrubber: new Scrubber(url, connectUrl),
  };
}

/** Copies errors from amqplib or the socket with the URL and password redacted; ours are safe already. */
export class Scrubber {
  /** The URL as it may be shown. */
  readonly safeUrl: string;
  constructor(
    private readonly url: string,
    /** The URL as amqplib is given it (with `heartbeat` added). */
    private readonly connectUrl: string,
  ) {
    this.safeUrl = redactUrl(url);
  }

  scrub(thrown: unknown): Error {
    const error = coerceError(thrown);
    if (error instanceof OutboxError) return error;
    const clean = new Error(scrubSecrets(error.message, this.url, [this.connectUrl]));
    clean.name = error.name;
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" || typeof code === "number") Object.assign(clean, { code });
    return clean;
  }
}
