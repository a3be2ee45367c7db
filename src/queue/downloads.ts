// The downloads queue: its job, its payload and the one way to enqueue.
// The payload is only the row id and the job id is the row id, so enqueuing the
// same download twice (a retried request, the reconciler) never makes two jobs.
import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';

export const RENDER_JOB = 'render';
/** The hourly removal of expired files (src/worker/cleanup-job.ts). */
export const CLEANUP_JOB = 'cleanup';
type JobName = typeof RENDER_JOB | typeof CLEANUP_JOB;

export interface RenderJobData {
  downloadId: string;
}

export type DownloadsQueue = Queue<RenderJobData, void, JobName>;

/** Retries and bounded retention (the smallest Redis plans have a few MB). */
export const JOB_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 2_000 },
  removeOnComplete: { age: 3_600, count: 100 },
  removeOnFail: { age: 24 * 3_600, count: 500 },
};

/** On the process's shared client (from the connection factory): the Queue opens no connection of its own. */
export function createDownloadsQueue(name: string, connection: Redis): DownloadsQueue {
  return new Queue<RenderJobData, void, JobName>(name, {
    connection,
    defaultJobOptions: JOB_OPTIONS,
    // BullMQ keeps up to 10,000 events by default (MBs on a 5 MB plan); nothing here reads old ones.
    streams: { events: { maxLen: 500 } },
  });
}

export class EnqueueTimeoutError extends Error {
  readonly code = 'nanoscale:enqueue-timeout';
  constructor(ms: number) {
    super(`enqueue did not finish within ${ms} ms`);
    this.name = 'EnqueueTimeoutError';
  }
}

/** Adds the render job for a row; bounded in time so a slow Redis never holds a request. */
export async function enqueueDownload(queue: DownloadsQueue, downloadId: string, timeoutMs = 2_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EnqueueTimeoutError(timeoutMs)), timeoutMs);
  });
  try {
    await Promise.race([queue.add(RENDER_JOB, { downloadId }, { jobId: downloadId }), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Hourly: each run may wake a scaled-to-zero worker, so not more often. */
export const CLEANUP_EVERY_MS = 60 * 60_000;

/**
 * Makes sure the hourly `cleanup` job is scheduled. Called by every reconcile pass,
 * so a Redis that restarted empty gets it back. Only a missing scheduler is created,
 * with its first run one interval away: BullMQ would otherwise run it at once, and
 * every boot would wake a scaled-to-zero worker.
 */
export async function scheduleCleanup(queue: DownloadsQueue, everyMs = CLEANUP_EVERY_MS): Promise<void> {
  // BullMQ types the scheduler id as a job name: the job's name doubles as its id.
  if (await queue.getJobScheduler(CLEANUP_JOB)) return;
  await queue.upsertJobScheduler(CLEANUP_JOB, { every: everyMs, startDate: Date.now() + everyMs }, {
    name: CLEANUP_JOB,
    data: { downloadId: '' },
    opts: { removeOnComplete: true, removeOnFail: 10 },
  });
}
