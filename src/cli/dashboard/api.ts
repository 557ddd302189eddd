// The dashboard's JSON API under /ui/api, over the library calls the CLI uses (outboxStatus through the sampler,
// doctor, listDeadLetters, retryDeadLetters, purgeDeadLetters): no SQL of its own.
//   GET  /ui/api/overview                 the settings the page needs, the samples, the latest status
//   GET  /ui/api/doctor                   doctor()'s report (every check)
//   GET  /ui/api/dead-letters?source=...  the dead letters that match the CLI's filters (same names as its flags)
//   POST /ui/api/dead-letters/retry       { source, filter, dryRun, all }: with dryRun, what would change
//   POST /ui/api/dead-letters/purge       the same, deleting
// A filter or body that cannot be used is a 400 with the CLI's words; an action while read-only is a 403.
import type { IncomingMessage } from "node:http";
import { OutboxConfigError } from "../../errors.js";
import { type DeadLetterTarget, listDeadLetters, purgeDeadLetters, retryDeadLetters } from "../../ops/dead-letters.js";
import { doctor } from "../../ops/doctor.js";
import { countFlag, type FlagValues } from "../flags/common.js";
import { parseDeadLetterFilter } from "../flags/dead-letters.js";
import type { ResolvedDashboardOptions } from "./options.js";
import type { Sampler } from "./sampler.js";

export interface ApiAnswer {
  status: number;
  body: unknown;
}

/** The filter names of the query and of an action's `filter`: the CLI's flags without their dashes. */
const FILTER_NAMES = ["exchange", "routing-key", "error", "since", "until", "id", "handler"] as const;
const REPEATABLE = new Set(["exchange", "id", "handler"]);

const MAX_BODY_BYTES = 64 * 1024;

function sourceOf(value: unknown): "outbox" | "inbox" {
  if (value === undefined || value === "outbox") return "outbox";
  if (value === "inbox") return "inbox";
  throw new OutboxConfigError(`Expected source to be outbox or inbox, got ${JSON.stringify(String(value))}.`);
}

/** Values by filter name, as the CLI's parser takes them; `get` returns every value given for a name. */
function filterValues(get: (name: string) => string[]): FlagValues {
  const values: FlagValues = {};
  for (const name of FILTER_NAMES) {
    const given = get(name);
    if (given.length === 0) continue;
    if (!REPEATABLE.has(name) && given.length > 1) throw new OutboxConfigError(`Expected one ${name}, got several.`);
    values[name] = REPEATABLE.has(name) ? given : given[0];
  }
  return values;
}

/** An action's `filter` object: each value a string or an array of strings. */
function bodyFilter(filter: unknown): FlagValues {
  if (filter === undefined) return {};
  if (typeof filter !== "object" || filter === null || Array.isArray(filter)) {
    throw new OutboxConfigError("Expected filter to be an object of the list's filter names.");
  }
  const record = filter as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !(FILTER_NAMES as readonly string[]).includes(k));
  if (unknown.length > 0) throw new OutboxConfigError(`Unknown filter ${JSON.stringify(unknown[0])}.`);
  return filterValues((name) => {
    const value = record[name];
    if (value === undefined) return [];
    const list = Array.isArray(value) ? value : [value];
    if (!list.every((v) => typeof v === "string")) throw new OutboxConfigError(`Expected ${name} to be text.`);
    return list as string[];
  });
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  if (!/^application\/json\b/i.test(req.headers["content-type"] ?? "")) {
    throw new OutboxConfigError("Expected a JSON body (content-type: application/json).");
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new OutboxConfigError(`Expected a body of at most ${MAX_BODY_BYTES} bytes.`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new OutboxConfigError("Expected a JSON body.");
  }
}

export function overview(options: ResolvedDashboardOptions, sampler: Sampler): ApiAnswer {
  const { samples, status, error } = sampler.snapshot();
  return {
    status: 200,
    body: {
      config: {
        schema: options.schema,
        allowActions: options.allowActions,
        tokenRequired: options.token !== undefined,
        sampleIntervalMs: options.sampleIntervalMs,
      },
      status: status ?? null,
      samples,
      samplingError: error ?? null,
    },
  };
}

export async function doctorReport(options: ResolvedDashboardOptions): Promise<ApiAnswer> {
  return { status: 200, body: await doctor(options.pool, { schema: options.schema, checks: "all" }) };
}

export async function deadLetters(options: ResolvedDashboardOptions, query: URLSearchParams): Promise<ApiAnswer> {
  const source = sourceOf(query.get("source") ?? undefined);
  const filter = parseDeadLetterFilter(
    filterValues((name) => query.getAll(name)),
    source,
  );
  const limit = countFlag("limit", query.get("limit") ?? undefined, 50);
  const target: DeadLetterTarget = { source, schema: options.schema };
  const list = await listDeadLetters(options.pool, target, filter, limit);
  return { status: 200, body: { source, ...list } };
}

export interface ActionRequest {
  action: "retry" | "purge";
  source: "outbox" | "inbox";
  filter: ReturnType<typeof parseDeadLetterFilter>;
  dryRun: boolean;
  all: boolean;
}

/** An action's body, checked: what it asks, before anything is done. */
export function actionRequest(action: "retry" | "purge", body: unknown): ActionRequest {
  if (typeof body !== "object" || body === null) throw new OutboxConfigError("Expected a JSON object.");
  const { source, filter, dryRun, all, ...rest } = body as Record<string, unknown>;
  const extra = Object.keys(rest)[0];
  if (extra !== undefined) throw new OutboxConfigError(`Unknown field ${JSON.stringify(extra)}.`);
  if (dryRun !== undefined && typeof dryRun !== "boolean") throw new OutboxConfigError("Expected dryRun: boolean.");
  if (all !== undefined && typeof all !== "boolean") throw new OutboxConfigError("Expected all: boolean.");
  const resolvedSource = sourceOf(source);
  return {
    action,
    source: resolvedSource,
    filter: parseDeadLetterFilter(bodyFilter(filter), resolvedSource),
    dryRun: dryRun === true,
    all: all === true,
  };
}

export async function runAction(options: ResolvedDashboardOptions, request: ActionRequest): Promise<ApiAnswer> {
  const change = request.action === "retry" ? retryDeadLetters : purgeDeadLetters;
  const target: DeadLetterTarget = { source: request.source, schema: options.schema };
  const result = await change(options.pool, target, request.filter, { dryRun: request.dryRun, all: request.all });
  return { status: 200, body: { action: request.action, source: request.source, ...result } };
}
