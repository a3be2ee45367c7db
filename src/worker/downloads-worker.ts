// The BullMQ Worker of the worker process, and its graceful stop.
// Connections: the shared client given here carries every command; BullMQ makes its
// blocking connection with `duplicate()`, which the connection factory names,
// counts and budgets. Concurrency adds no connection.
import { Worker, type Processor } from 'bullmq';
import type { Redis } from 'ioredis';
import type { RenderJobData } from '../queue/downloads.js';
import { connectionName } from '../redis/connection-factory.js';

export interface DownloadsWorkerOptions {
  queueName: string;
  connection: Redis;
  processName: string;
  /** Jobs run at once (default 2). */
  concurrency?: number;
  processor: Processor<RenderJobData, void>;
  /** A job whose worker died is retried this many times before it fails (default 3). */
  maxStalledCount?: number;
  /** How long a job's lock lasts without renewal: a killed worker's job is handed on after it (default 30 s). */
  lockMs?: number;
}

export function createDownloadsWorker(options: DownloadsWorkerOptions): Worker<RenderJobData, void> {
  return new Worker<RenderJobData, void>(options.queueName, options.processor, {
    connection: options.connection,
    concurrency: options.concurrency ?? 2,
    // Names the blocking connection `bull:<queue>:w:nanoscale:<process>:blocking`,
    // which is both our naming scheme and what `Queue.getWorkers()` looks for.
    name: connectionName(options.processName, 'blocking'),
    maxStalledCount: options.maxStalledCount ?? 3,
    // A killed dyno's job is retried once its lock expires and the stalled check runs.
    lockDuration: options.lockMs ?? 30_000,
    stalledInterval: options.lockMs ?? 30_000,
  });
}

/**
 * Stops taking jobs and lets active ones finish for up to `graceMs` (Heroku sends
 * SIGTERM, then SIGKILL 30 s later: 25 s leaves time to close connections). Jobs
 * still running after that are left to BullMQ's stalled check, which retries them.
 */
export async function stopWorker(worker: Worker, graceMs = 25_000): Promise<'drained' | 'forced'> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'forced'>((resolve) => {
    timer = setTimeout(() => resolve('forced'), graceMs);
  });
  const outcome = await Promise.race([worker.close().then(() => 'drained' as const), timedOut]);
  clearTimeout(timer);
  if (outcome === 'forced') await worker.close(true).catch(() => {});
  return outcome;
}
