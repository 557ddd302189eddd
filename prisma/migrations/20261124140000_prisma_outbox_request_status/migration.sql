-- CreateTable
CREATE TABLE "outbox_request" (
    "id" UUID NOT NULL,
    "type" VARCHAR(255) NOT NULL,
    "status" VARCHAR(16) NOT NULL DEFAULT 'pending',
    "input" JSONB NOT NULL,
    "result" JSONB,
    "error" JSONB,
    "progress" SMALLINT NOT NULL DEFAULT 0,
    "progress_message" TEXT,
    "idempotency_key" VARCHAR(255),
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "completed_at" TIMESTAMPTZ(3),
    "expires_at" TIMESTAMPTZ(3),

    CONSTRAINT "outbox_request_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "outbox_request_expires_at_idx" ON "outbox_request"("expires_at");

-- CreateIndex
CREATE UNIQUE INDEX "outbox_request_type_idempotency_key_key" ON "outbox_request"("type", "idempotency_key");
