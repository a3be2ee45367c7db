// The database is the truth; Redis may forget. The reconciler finds rows that should
// have a job and have none (the enqueue failed while Redis was unreachable, or
// Redis restarted empty, or the job died with its worker) and enqueues them again.
// The job id is the row id, so a row that does have a job is never enqueued twice.
// A download that was made but whose "ready" email could not be sent is tried again,
// at most once per `emailRetryMs`; one that keeps failing to render is given up by
// the processor after MAX_RENDERS renders, so nothing loops forever.
import type { PrismaClient } from '../generated/prisma/client.js';
import { enqueueDownload, type DownloadsQueue } from './downloads.js';

export interface ReconcileResult {
  checked: number;
  enqueued: string[];
}

const PENDING = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

export async function reconcileDownloads(
  db: PrismaClient,
  queue: DownloadsQueue,
  options: { now: Date; graceMs?: number; batch?: number; emailRetryMs?: number },
): Promise<ReconcileResult> {
  const now = options.now.getTime();
  // A fresh row may be mid-enqueue in the web process: leave it a grace period.
  const before = new Date(now - (options.graceMs ?? 10_000));
  const emailRetryMs = options.emailRetryMs ?? 10 * 60_000;
  const rows = await db.download.findMany({
    where: {
      updatedAt: { lt: before },
      expiresAt: { gt: options.now },
      OR: [{ status: { in: ['queued', 'processing'] } }, { status: 'ready', emailedAt: null }],
    },
    select: { id: true, status: true },
    orderBy: { createdAt: 'asc' },
    take: options.batch ?? 200,
  });
  const enqueued: string[] = [];
  for (const row of rows) {
    const job = await queue.getJob(row.id);
    const state = job ? await job.getState() : 'unknown';
    if (PENDING.has(state)) continue;
    // Made, but its email failed every attempt: wait a while before trying again.
    if (row.status === 'ready' && state === 'failed' && now - (job?.finishedOn ?? 0) < emailRetryMs) continue;
    // A finished job with a row still open means the outcome was lost: run it again.
    if (job) await queue.remove(row.id);
    await enqueueDownload(queue, row.id);
    await db.download.update({ where: { id: row.id }, data: { enqueuedAt: options.now } });
    enqueued.push(row.id);
  }
  return { checked: rows.length, enqueued };
}
