-- CreateTable
CREATE TABLE "outbox_message" (
    "id" BIGSERIAL NOT NULL,
    "message_id" UUID NOT NULL,
    "exchange" VARCHAR(255) NOT NULL,
    "routing_key" VARCHAR(255) NOT NULL,
    "payload" JSON NOT NULL,
    "headers" JSONB,
    "type" VARCHAR(255),
    "correlation_id" VARCHAR(255),
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "available_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_error" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "outbox_message_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "outbox_dead_letter" (
    "id" BIGINT NOT NULL,
    "message_id" UUID NOT NULL,
    "exchange" VARCHAR(255) NOT NULL,
    "routing_key" VARCHAR(255) NOT NULL,
    "payload" JSON NOT NULL,
    "headers" JSONB,
    "type" VARCHAR(255),
    "correlation_id" VARCHAR(255),
    "attempts" INTEGER NOT NULL,
    "last_error" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "failed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "outbox_dead_letter_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "outbox_message_message_id_key" ON "outbox_message"("message_id");

-- CreateIndex
CREATE INDEX "outbox_message_available_at_id_idx" ON "outbox_message"("available_at", "id");

-- CreateIndex
CREATE UNIQUE INDEX "outbox_dead_letter_message_id_key" ON "outbox_dead_letter"("message_id");
