// The record a declared event is built from, whatever the call site asked for, and its JSON-safe copy.
//
// One declared event publishes one payload shape: the model's scalar and enum fields (model-shapes.ts). The caller's
// `select` or `omit` may leave some out, so the write's own query is widened to fetch them and its result narrowed back
// to what the caller asked for. Widening rather than a second read in the same transaction: the row is already in
// hand, whereas a read is one more round trip per write. `include` needs nothing: it returns every field of the
// default selection.
//
// The default payload (`true` or a routing key) is a JSON-safe copy of the record, since a model's own columns are
// not all JSON: BigInt -> decimal string, Decimal -> string in plain notation, Bytes -> base64, DateTime -> ISO 8601,
// Float NaN/Infinity -> "NaN"/"Infinity"/"-Infinity". Functions receive the record as Prisma returns it, and what they
// return is validated strictly, like `$enqueue`.
import type { ModelShape } from "./model-shapes.js";
import type { RuntimeField } from "./prisma-internals.js";

type Row = Record<string, unknown>;

interface WidenedQuery {
  /** The arguments to run the write with. */
  args: unknown;
  /** Makes a record what the caller's arguments would have returned (identity when nothing was widened). */
  narrow: (record: unknown) => unknown;
}

const identity = (record: unknown) => record;

function dropping(keys: string[]): (record: unknown) => unknown {
  return (record) => {
    if (typeof record !== "object" || record === null) return record;
    const out: Row = { ...(record as Row) };
    for (const key of keys) delete out[key];
    return out;
  };
}

/** The write's arguments widened to return every field of the event's record, and how to narrow the result back. */
export function widenQuery(args: unknown, shape: ModelShape): WidenedQuery {
  if (typeof args !== "object" || args === null) return { args, narrow: identity };
  const { select, omit } = args as { select?: unknown; omit?: unknown };
  if (typeof select === "object" && select !== null) {
    const chosen = select as Row;
    const missing = shape.fields.map((f) => f.name).filter((name) => !chosen[name]);
    if (missing.length === 0) return { args, narrow: identity };
    const widened = { ...chosen };
    for (const name of missing) widened[name] = true;
    return { args: { ...(args as Row), select: widened }, narrow: dropping(missing) };
  }
  if (typeof omit === "object" && omit !== null) {
    const left = omit as Row;
    const omitted = shape.fields.map((f) => f.name).filter((name) => left[name] === true);
    if (omitted.length === 0) return { args, narrow: identity };
    const widened = { ...left };
    for (const name of omitted) widened[name] = false;
    return { args: { ...(args as Row), omit: widened }, narrow: dropping(omitted) };
  }
  return { args, narrow: identity };
}

/** The event's record: the shape's fields of a (widened) result, in schema order. */
export function eventRecord(result: unknown, shape: ModelShape): Row {
  const row = result as Row;
  const record: Row = {};
  for (const field of shape.fields) if (field.name in row) record[field.name] = row[field.name];
  return record;
}

function jsonSafeValue(value: unknown, field: RuntimeField): unknown {
  if (value === null || value === undefined) return value;
  switch (field.type) {
    case "BigInt":
      return typeof value === "bigint" ? value.toString() : value;
    case "Decimal": {
      const decimal = value as { toFixed?: () => string };
      return typeof decimal.toFixed === "function" ? decimal.toFixed() : String(value);
    }
    case "Bytes":
      return value instanceof Uint8Array
        ? Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64")
        : value;
    case "DateTime":
      return value instanceof Date ? value.toISOString() : value;
    case "Float":
      return typeof value === "number" && !Number.isFinite(value) ? String(value) : value;
    default:
      return value; // String, Int, Boolean, enums; Json is JSON already
  }
}

/** The default payload of a declared event: a JSON-safe copy of its record. */
export function jsonSafeRecord(record: Row, shape: ModelShape): Row {
  const out: Row = {};
  for (const field of shape.fields) {
    if (!(field.name in record)) continue;
    const value = record[field.name];
    // Scalar lists (String[], BigInt[]) are arrays; a Json value is JSON already, whatever its shape.
    out[field.name] =
      Array.isArray(value) && field.type !== "Json"
        ? value.map((v) => jsonSafeValue(v, field))
        : jsonSafeValue(value, field);
  }
  return out;
}
