// Expired downloads lose their file. A BullMQ job scheduler (scheduleCleanup in
// src/queue/downloads.ts) adds one `cleanup` job per hour to the downloads queue, so it
// runs on a worker's existing connections (inside the budget) and on one worker only.
// Rows stay, so an old link answers 410 (expired) rather than 404.
import type { PrismaClient } from '../generated/prisma/client.js';

export async function deleteExpiredFiles(db: PrismaClient, now: Date): Promise<number> {
  const { count } = await db.downloadFile.deleteMany({ where: { download: { expiresAt: { lte: now } } } });
  return count;
}
