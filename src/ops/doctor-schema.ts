// What the shipped migrations create (prisma/*.prisma and prisma/migrations/), written once, here: the doctor's
// schema-drift check compares the database's catalog with it. Types are PostgreSQL's own spelling (format_type()).
//
// How it stays in step with the Prisma files: test/ops/doctor-schema.unit.test.ts parses prisma/outbox.prisma,
// inbox.prisma and request.prisma (models, @map/@@map, @db types, optional fields, @id, @unique, @@unique, @@index)
// and the storage settings of the migrations' ALTER TABLE ... SET (...), and fails on any difference; and
// test/ops/doctor.test.ts runs the check on a database migrated with prisma/migrations and expects no drift. A new
// column or index in a model is therefore a failing test until it is written here too.

/** The parts a database may have: the outbox's two tables, the inbox's, request-reply's. */
export type DoctorPart = "outbox" | "inbox" | "requests";
export const DOCTOR_PARTS: readonly DoctorPart[] = ["outbox", "inbox", "requests"];

export interface ExpectedColumn {
  /** format_type() of the column, e.g. "character varying(255)", "timestamp(3) with time zone". */
  type: string;
  notNull: boolean;
}

export interface ExpectedIndex {
  /** The indexed columns, in order. */
  columns: string[];
  unique: boolean;
  /** The primary key (unique too). */
  primary?: boolean;
}

export interface ExpectedTable {
  part: DoctorPart;
  name: string;
  columns: Record<string, ExpectedColumn>;
  indexes: ExpectedIndex[];
  /** Storage parameters (pg_class.reloptions) a migration sets, as PostgreSQL shows them. */
  storage: Record<string, string>;
}

const VARCHAR = "character varying(255)";
const TIMESTAMP = "timestamp(3) with time zone";
const req = (type: string): ExpectedColumn => ({ type, notNull: true });
const opt = (type: string): ExpectedColumn => ({ type, notNull: false });

export const EXPECTED_TABLES: readonly ExpectedTable[] = [
  {
    part: "outbox",
    name: "outbox_message",
    columns: {
      id: req("bigint"),
      message_id: req("uuid"),
      exchange: req(VARCHAR),
      routing_key: req(VARCHAR),
      payload: req("json"),
      headers: opt("jsonb"),
      type: opt(VARCHAR),
      correlation_id: opt(VARCHAR),
      attempts: req("integer"),
      available_at: req(TIMESTAMP),
      last_error: opt("text"),
      created_at: req(TIMESTAMP),
      ordering_key: opt(VARCHAR),
    },
    indexes: [
      { columns: ["id"], unique: true, primary: true },
      { columns: ["message_id"], unique: true },
      { columns: ["available_at", "id"], unique: false },
      { columns: ["ordering_key", "id"], unique: false },
    ],
    // prisma/migrations/20261124130000_prisma_outbox_queue_tuning: vacuum a queue table by rows, not by share.
    storage: {
      autovacuum_vacuum_scale_factor: "0",
      autovacuum_vacuum_threshold: "1000",
      autovacuum_analyze_scale_factor: "0",
      autovacuum_analyze_threshold: "1000",
      autovacuum_vacuum_cost_delay: "0",
    },
  },
  {
    part: "outbox",
    name: "outbox_dead_letter",
    columns: {
      id: req("bigint"),
      message_id: req("uuid"),
      exchange: req(VARCHAR),
      routing_key: req(VARCHAR),
      payload: req("json"),
      headers: opt("jsonb"),
      type: opt(VARCHAR),
      correlation_id: opt(VARCHAR),
      attempts: req("integer"),
      last_error: opt("text"),
      created_at: req(TIMESTAMP),
      failed_at: req(TIMESTAMP),
      ordering_key: opt(VARCHAR),
    },
    indexes: [
      { columns: ["id"], unique: true, primary: true },
      { columns: ["message_id"], unique: true },
      { columns: ["ordering_key", "id"], unique: false },
    ],
    storage: {},
  },
  {
    part: "inbox",
    name: "inbox_message",
    columns: {
      id: req("bigint"),
      message_id: opt(VARCHAR),
      handler: req(VARCHAR),
      exchange: req(VARCHAR),
      routing_key: req(VARCHAR),
      payload: opt("json"),
      body: opt("bytea"),
      headers: opt("jsonb"),
      type: opt(VARCHAR),
      correlation_id: opt(VARCHAR),
      status: req("character varying(16)"),
      attempts: req("integer"),
      available_at: req(TIMESTAMP),
      last_error: opt("text"),
      received_at: req(TIMESTAMP),
      processed_at: opt(TIMESTAMP),
      ordering_key: opt(VARCHAR),
    },
    indexes: [
      { columns: ["id"], unique: true, primary: true },
      { columns: ["message_id", "handler"], unique: true },
      { columns: ["ordering_key", "handler", "status", "id"], unique: false },
      { columns: ["status", "available_at", "id"], unique: false },
      { columns: ["processed_at"], unique: false },
    ],
    storage: {},
  },
  {
    part: "requests",
    name: "outbox_request",
    columns: {
      id: req("uuid"),
      type: req(VARCHAR),
      status: req("character varying(16)"),
      input: req("jsonb"),
      result: opt("jsonb"),
      error: opt("jsonb"),
      progress: req("smallint"),
      progress_message: opt("text"),
      idempotency_key: opt(VARCHAR),
      attempts: req("integer"),
      created_at: req(TIMESTAMP),
      started_at: opt(TIMESTAMP),
      updated_at: req(TIMESTAMP),
      completed_at: opt(TIMESTAMP),
      expires_at: opt(TIMESTAMP),
    },
    indexes: [
      { columns: ["id"], unique: true, primary: true },
      { columns: ["type", "idempotency_key"], unique: true },
      { columns: ["expires_at"], unique: false },
    ],
    storage: {},
  },
];

/** The expected tables of some parts. */
export function expectedTables(parts: readonly DoctorPart[]): ExpectedTable[] {
  return EXPECTED_TABLES.filter((t) => parts.includes(t.part));
}
