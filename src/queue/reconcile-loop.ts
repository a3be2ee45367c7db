// The periodic reconcile of the web tier, run by one process at a time: every
// interval each web process tries a Redis lock (SET NX PX on its shared client) and
// the one that gets it re-enqueues rows Redis forgot and keeps the cleanup schedule.
// It runs in web because web is always up, even while the worker is scaled to zero.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { PrismaClient } from '../generated/prisma/client.js';
import { reportError, type Logger } from '../log.js';
import { scheduleCleanup, type DownloadsQueue } from './downloads.js';
import { reconcileDownloads } from './reconciler.js';

export interface ReconcileLoopOptions {
  redis: Redis;
  db: PrismaClient;
  queue: DownloadsQueue;
  log: Logger;
  /** Default 15 s (AUTOSCALE_INTERVAL). */
  intervalMs?: number;
  now?: () => Date;
}

export function startReconcileLoop(options: ReconcileLoopOptions): { stop(): Promise<void> } {
  const { redis, db, queue, log } = options;
  const intervalMs = options.intervalMs ?? 15_000;
  const now = options.now ?? (() => new Date());
  const lockKey = `nanoscale:${queue.name}:reconcile-lock`;
  const token = randomBytes(8).toString('hex');
  let running: Promise<void> = Promise.resolve();

  const pass = async () => {
    // Held for most of an interval: one pass per interval across all processes.
    const got = await redis.set(lockKey, token, 'PX', Math.max(100, Math.floor(intervalMs * 0.9)), 'NX');
    if (got !== 'OK') return;
    const result = await reconcileDownloads(db, queue, { now: now(), graceMs: Math.min(10_000, intervalMs) });
    if (result.enqueued.length > 0) log.info(`reconciler: re-enqueued ${result.enqueued.length} download(s) that had no job`);
    await scheduleCleanup(queue);
  };

  let busy = false;
  const timer = setInterval(() => {
    // A pass slower than the interval is not overlapped by the next one.
    if (busy) return;
    busy = true;
    running = pass()
      .catch(reportError(log, 'reconciler'))
      .finally(() => {
        busy = false;
      });
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
