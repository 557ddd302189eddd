// The handlers of `inbox()`, validated: what each matches, and how it handles (one message, or a batch).
import { expectString, rejectUnknownKeys } from "../config/validate.js";
import { OutboxConfigError } from "../errors.js";
import { handlerContract, type MessageContract } from "../message/contract.js";
import { type ResolvedBatch, resolveHandling } from "./batch-options.js";
import { WAITING_PREFIX } from "./unhandled.js";

export function shortString(value: unknown, name: string): string {
  return expectString(name, value, { minBytes: 1, maxBytes: 255 });
}

function strings(value: unknown, name: string): string[] {
  const list = Array.isArray(value) ? value : [value];
  return list.map((v, i) => shortString(v, Array.isArray(value) ? `${name}[${i}]` : name));
}

/** A handler, validated: its name and what it matches. */
export interface ResolvedHandler {
  name: string;
  on: string[];
  patterns: string[];
  types: string[];
  handle: (...args: any[]) => Promise<unknown>;
  /** A batch handler's: its batches run in batch-attempt.ts (`handle` is then its one-message path). */
  handleBatch: ((...args: any[]) => Promise<unknown>) | undefined;
  batch: ResolvedBatch | undefined;
  /** Runs in the transaction that marks a message dead for this handler (request-reply records `failed` there). */
  dead: ((...args: any[]) => Promise<unknown>) | undefined;
  /** The payload is validated by it before `handle` runs (message/contract.ts). */
  contract: MessageContract | undefined;
}

const HANDLER_KEYS = ["on", "pattern", "type", "handle", "handleBatch", "batch", "dead", "contract"];

export function resolveHandlers(handlers: unknown): ResolvedHandler[] {
  if (typeof handlers !== "object" || handlers === null || Array.isArray(handlers)) {
    throw new OutboxConfigError("Expected `handlers` to be an object of handlers keyed by name.");
  }
  const resolved: ResolvedHandler[] = [];
  for (const [name, spec] of Object.entries(handlers as Record<string, unknown>)) {
    shortString(name, "handler name");
    if (name.startsWith(WAITING_PREFIX)) {
      throw new OutboxConfigError(
        `Expected handler name ${JSON.stringify(name)} not to start with ${JSON.stringify(WAITING_PREFIX)}: it names the rows waiting for a handler (docs/inbox.md#rolling-deploys).`,
      );
    }
    const s = spec as { on?: unknown; pattern?: unknown; type?: unknown; handle?: unknown; dead?: unknown } | null;
    if (typeof s !== "object" || s === null || (typeof s.handle !== "function" && !("handleBatch" in s))) {
      throw new OutboxConfigError(`Expected \`handlers.${name}\` to be { on | pattern | type, handle(message, tx) }.`);
    }
    // A misspelt key (`onDead` for `dead`) would otherwise be a hook that silently never runs.
    rejectUnknownKeys(`handlers.${name}`, s, HANDLER_KEYS);
    if (s.dead !== undefined && typeof s.dead !== "function") {
      throw new OutboxConfigError(
        `Expected \`handlers.${name}.dead\` to be a function (message, tx, error), or absent.`,
      );
    }
    const handling = resolveHandling(name, s);
    const contract = handlerContract(name, s);
    const on = contract ? [contract.routingKey] : s.on === undefined ? [] : strings(s.on, `handlers.${name}.on`);
    const patterns = s.pattern === undefined ? [] : strings(s.pattern, `handlers.${name}.pattern`);
    const types = s.type === undefined ? [] : strings(s.type, `handlers.${name}.type`);
    if (on.length + patterns.length + types.length === 0) {
      throw new OutboxConfigError(
        `\`handlers.${name}\` matches nothing: give \`on\` (a routing key), \`pattern\` (e.g. "order.*") or \`type\`.`,
      );
    }
    resolved.push({
      name,
      on,
      patterns,
      types,
      ...handling,
      dead: s.dead as ResolvedHandler["dead"],
      contract,
    });
  }
  if (resolved.length === 0) throw new OutboxConfigError("Expected at least one handler in `handlers`.");
  return resolved;
}
