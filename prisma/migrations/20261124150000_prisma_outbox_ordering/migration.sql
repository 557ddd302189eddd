-- AlterTable
ALTER TABLE "outbox_message" ADD COLUMN     "ordering_key" VARCHAR(255);

-- AlterTable
ALTER TABLE "outbox_dead_letter" ADD COLUMN     "ordering_key" VARCHAR(255);

-- AlterTable
ALTER TABLE "inbox_message" ADD COLUMN     "ordering_key" VARCHAR(255);

-- CreateIndex
CREATE INDEX "outbox_message_ordering_key_id_idx" ON "outbox_message"("ordering_key", "id");

-- CreateIndex
CREATE INDEX "outbox_dead_letter_ordering_key_id_idx" ON "outbox_dead_letter"("ordering_key", "id");

-- CreateIndex
CREATE INDEX "inbox_message_ordering_key_handler_status_id_idx" ON "inbox_message"("ordering_key", "handler", "status", "id");
