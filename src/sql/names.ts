// Names shared by every statement. The shipped Prisma model maps to exactly these (@@map / @map).

/** The outbox table. */
export const OUTBOX_TABLE = "outbox_message";
/** Where messages go after their last allowed attempt. */
export const DEAD_LETTER_TABLE = "outbox_dead_letter";
/** The NOTIFY channel writers signal on commit and relays LISTEN to. */
export const NOTIFY_CHANNEL = "prisma_outbox";
/** The inbox table (prisma/inbox.prisma). */
export const INBOX_TABLE = "inbox_message";
