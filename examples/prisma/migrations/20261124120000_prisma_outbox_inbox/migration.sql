-- CreateTable
CREATE TABLE "inbox_message" (
    "id" BIGSERIAL NOT NULL,
    "message_id" VARCHAR(255),
    "handler" VARCHAR(255) NOT NULL,
    "exchange" VARCHAR(255) NOT NULL,
    "routing_key" VARCHAR(255) NOT NULL,
    "payload" JSON,
    "body" BYTEA,
    "headers" JSONB,
    "type" VARCHAR(255),
    "correlation_id" VARCHAR(255),
    "status" VARCHAR(16) NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "available_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_error" TEXT,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "processed_at" TIMESTAMPTZ(3),

    CONSTRAINT "inbox_message_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "inbox_message_status_available_at_id_idx" ON "inbox_message"("status", "available_at", "id");

-- CreateIndex
CREATE INDEX "inbox_message_processed_at_idx" ON "inbox_message"("processed_at");

-- CreateIndex
CREATE UNIQUE INDEX "inbox_message_message_id_handler_key" ON "inbox_message"("message_id", "handler");

