// The exchanges: asserting the configured ones, and knowing which others exist before publishing to them.
//
// Publishing to an exchange that does not exist makes the broker close the channel (404), which fails every batch
// in flight on it, over and over while the relay retries. So each exchange not yet seen on this connection is first
// checked passively, on a throwaway channel, and messages to a missing one get `{ ok: false }` while the others are
// published.
//
// What a connection's cache believes about one exchange name:
//
//   unknown ──first message to it──▶ checking ──exists──▶ known ──channel closed (likely a 404)──▶ unknown
//                                        │                  └──cache full (MAX_KNOWN_EXCHANGES)──▶ unknown
//                                        └──404──▶ unknown (that batch's messages to it fail; the next batch checks again)
//
// Concurrent batches share one check per name. The configured exchanges start as known (they were just asserted) and
// are asserted again whenever the channel is reopened, since a configured exchange may be the one that was deleted.
// An exchange deleted after its check still closes the channel: the batches in flight reject, the channel is reopened
// and the cache forgets everything, so the relay's retry gets the per-message outcome.
import type { ChannelModel } from "amqplib";
import { OutboxConfigError } from "../../errors.js";
import type { ExchangeSpec, OutboundMessage } from "../transport.js";
import { brokerText, codeOf, quietly } from "./helpers.js";
import type { Scrubber } from "./options.js";

/** Forgetting known exchanges now and then bounds the memory a relay publishing to ever new exchanges would use. */
const MAX_KNOWN_EXCHANGES = 10_000;

/**
 * Declares the configured exchanges, on a throwaway channel (a failed assertion closes the channel it was made on).
 * Settings that conflict with an existing exchange (406) and a refused declaration (403) cannot be fixed by retrying:
 * they reject as OutboxConfigError, which fails start().
 */
export async function assertExchanges(
  conn: ChannelModel,
  exchanges: readonly ExchangeSpec[],
  scrubber: Scrubber,
): Promise<void> {
  if (exchanges.length === 0) return;
  const channel = await conn.createChannel();
  channel.on("error", () => {});
  try {
    for (const { name, type, durable = true } of exchanges) {
      try {
        await channel.assertExchange(name, type, { durable });
      } catch (thrown) {
        const error = scrubber.scrub(thrown);
        const said = brokerText(error);
        if (codeOf(error) === 406) {
          throw new OutboxConfigError(
            `exchange \`${name}\` exists with other settings (type/durable) than configured (type ${type}, durable ${durable}): ${said}; delete it or change the configuration`,
          );
        }
        if (codeOf(error) === 403) {
          throw new OutboxConfigError(
            `the broker refused to declare exchange \`${name}\` (ACCESS_REFUSED 403): ${said}; grant the user configure permission on it or declare it beforehand`,
          );
        }
        throw error;
      }
    }
  } finally {
    await quietly(() => channel.close());
  }
}

/** What one connection knows about which exchanges exist. */
export class ExchangeCache {
  #known: Set<string>;
  readonly #checks = new Map<string, Promise<boolean>>();

  constructor(
    private readonly conn: ChannelModel,
    private readonly configured: readonly ExchangeSpec[],
  ) {
    this.#known = this.#configuredNames();
  }

  /** The channel closed, most likely on a deleted exchange (404): check again before publishing to any. */
  forgetAll(): void {
    this.#known = new Set();
  }

  /** The configured exchanges were just asserted again. */
  trustConfigured(): void {
    this.#known = this.#configuredNames();
  }

  /** The exchanges of these messages that do not exist; rejects when a check fails for another reason. */
  async missing(messages: readonly OutboundMessage[]): Promise<Set<string>> {
    const missing = new Set<string>();
    for (const name of new Set(messages.map((message) => message.exchange))) {
      // The default exchange always exists and cannot be checked (403).
      if (name === "" || this.#known.has(name)) continue;
      let check = this.#checks.get(name);
      if (!check) {
        check = this.#check(name).finally(() => this.#checks.delete(name));
        this.#checks.set(name, check);
      }
      if (!(await check)) missing.add(name);
    }
    return missing;
  }

  async #check(name: string): Promise<boolean> {
    const channel = await this.conn.createChannel();
    channel.on("error", () => {});
    try {
      await channel.checkExchange(name);
      if (this.#known.size >= MAX_KNOWN_EXCHANGES) this.#known.clear();
      this.#known.add(name);
      return true;
    } catch (error) {
      if (codeOf(error) === 404) return false;
      throw error;
    } finally {
      await quietly(() => channel.close());
    }
  }

  #configuredNames(): Set<string> {
    return new Set(this.configured.map((spec) => spec.name));
  }
}
