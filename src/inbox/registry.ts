// Which handlers take a delivery. AMQP topic semantics for patterns: words are separated by dots, `*` matches exactly
// one word and `#` zero or more; `on` matches a routing key exactly; `type` the AMQP type property.
import type { ResolvedHandler } from "./handler-options.js";

function matches(pattern: string[], words: string[], i = 0, j = 0): boolean {
  if (i === pattern.length) return j === words.length;
  if (pattern[i] === "#") {
    for (let k = j; k <= words.length; k++) if (matches(pattern, words, i + 1, k)) return true;
    return false;
  }
  if (j === words.length) return false;
  return (pattern[i] === "*" || pattern[i] === words[j]) && matches(pattern, words, i + 1, j + 1);
}

/** True when `routingKey` matches the topic `pattern`. */
export function topicMatches(pattern: string, routingKey: string): boolean {
  return matches(pattern.split("."), routingKey.split("."));
}

export class HandlerRegistry {
  readonly #handlers: ResolvedHandler[];
  readonly #byName: Map<string, ResolvedHandler>;

  constructor(handlers: ResolvedHandler[]) {
    this.#handlers = handlers;
    this.#byName = new Map(handlers.map((h) => [h.name, h]));
  }

  /** The handlers a delivery is for, in declaration order. */
  match(routingKey: string, type: string | undefined): ResolvedHandler[] {
    return this.#handlers.filter(
      (h) =>
        h.on.includes(routingKey) ||
        h.patterns.some((p) => topicMatches(p, routingKey)) ||
        (type !== undefined && h.types.includes(type)),
    );
  }

  /** The handlers' names: the rows this inbox claims (others on the same table are another inbox's). */
  get names(): string[] {
    return this.#handlers.map((h) => h.name);
  }

  byName(name: string): ResolvedHandler | undefined {
    return this.#byName.get(name);
  }
}
