// What one process of each type costs in connections. The budget model sums these;
// the Redis connection factory hands each process exactly its cost as an allotment.

export const REDIS_CONNECTIONS = {
  /** A web cluster worker: one shared client (BullMQ Queue, rate limits, autoscaler, status). */
  webProcess: 1,
  /** The web cluster primary opens none: it only forks and supervises. */
  webPrimary: 0,
  /** A worker process: BullMQ's blocking connection + one shared command connection, whatever the concurrency. */
  workerProcess: 2,
} as const;
