// Expired downloads lose their file. A BullMQ job scheduler adds one `cleanup` job
// per interval to the downloads queue, so it runs on the worker's existing
// connections (inside the budget) and on one worker only, whatever the formation.
// Rows stay, so an old link answers 410 (expired) rather than 404.
import type { PrismaClient } from '../generated/prisma/client.js';
import { CLEANUP_JOB, type DownloadsQueue } from '../queue/downloads.js';

export { CLEANUP_JOB };
/** Hourly: each run may wake a scaled-to-zero worker, so not more often. */
export const CLEANUP_EVERY_MS = 60 * 60_000;

export async function scheduleCleanup(queue: DownloadsQueue, everyMs = CLEANUP_EVERY_MS): Promise<void> {
  // BullMQ types the scheduler id as a job name: the job's name doubles as its id.
  await queue.upsertJobScheduler(CLEANUP_JOB, { every: everyMs }, {
    name: CLEANUP_JOB,
    data: { downloadId: '' },
    opts: { removeOnComplete: true, removeOnFail: 10 },
  });
}

export async function deleteExpiredFiles(db: PrismaClient, now: Date): Promise<number> {
  const { count } = await db.downloadFile.deleteMany({ where: { download: { expiresAt: { lte: now } } } });
  return count;
}
