// The database is the truth; Redis may forget. The reconciler finds rows that should
// have a job and have none (the enqueue failed while Redis was unreachable, or
// Redis restarted empty) and enqueues them again. The job id is the row id, so a
// row that does have a job is never enqueued twice.
import type { PrismaClient } from '../generated/prisma/client.js';
import { enqueueDownload, type DownloadsQueue } from './downloads.js';

export interface ReconcileResult {
  checked: number;
  enqueued: string[];
}

export async function reconcileDownloads(
  db: PrismaClient,
  queue: DownloadsQueue,
  options: { now: Date; graceMs?: number; batch?: number },
): Promise<ReconcileResult> {
  // A fresh row may be mid-enqueue in the web process: leave it a grace period.
  const before = new Date(options.now.getTime() - (options.graceMs ?? 10_000));
  const rows = await db.download.findMany({
    where: { status: { in: ['queued', 'processing'] }, updatedAt: { lt: before }, expiresAt: { gt: options.now } },
    select: { id: true },
    orderBy: { createdAt: 'asc' },
    take: options.batch ?? 200,
  });
  const enqueued: string[] = [];
  for (const { id } of rows) {
    const state = await queue.getJobState(id);
    if (state !== 'unknown' && state !== 'completed' && state !== 'failed') continue;
    // A finished job with a row still open means the outcome was lost: run it again.
    if (state === 'completed' || state === 'failed') await queue.remove(id);
    await enqueueDownload(queue, id);
    await db.download.update({ where: { id }, data: { enqueuedAt: options.now } });
    enqueued.push(id);
  }
  return { checked: rows.length, enqueued };
}
