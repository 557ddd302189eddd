// What a declared event's record is made of, per model, from the client's runtime data model: the scalar and enum
// fields, less those the client omits everywhere (`new PrismaClient({ omit })`). The record is the same whatever the
// call site selects, includes or omits, so one declared event always publishes one shape (see record-payload.ts).
import { OutboxConfigError } from "../errors.js";
import type { ClientInternals, RuntimeField } from "./prisma-internals.js";

export interface ModelShape {
  model: string;
  /** The fields of an event's record, in schema order. */
  fields: RuntimeField[];
  /** Their names, for lookups. */
  names: Set<string>;
}

/** The shape of every model of the client. */
export function modelShapes(internals: ClientInternals): Map<string, ModelShape> {
  const shapes = new Map<string, ModelShape>();
  for (const [model, { fields }] of Object.entries(internals.models)) {
    const omitted = internals.globalOmit.get(model);
    const recordFields = fields.filter(
      (f) => (f.kind === "scalar" || f.kind === "enum") && !(omitted?.has(f.name) ?? false),
    );
    shapes.set(model, { model, fields: recordFields, names: new Set(recordFields.map((f) => f.name)) });
  }
  return shapes;
}

/**
 * Checks that every model named in `events` is a model of the client (keys are model names as written in the
 * schema), naming the valid ones and the likely intended one.
 */
export function checkEventModels(declared: Iterable<string>, shapes: Map<string, ModelShape>): void {
  const models = [...shapes.keys()];
  for (const key of declared) {
    if (shapes.has(key)) continue;
    const loose = (s: string) => s.toLowerCase().replaceAll("_", "");
    const near = models.find((m) => loose(m) === loose(key));
    const hint = near ? ` Did you mean \`${near}\` (keys are model names as written in the schema)?` : "";
    throw new OutboxConfigError(
      `\`events.${key}\` names no model of this Prisma client.${hint} Models: ${models.join(", ") || "(none)"}.`,
    );
  }
}
