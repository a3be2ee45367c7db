// The web dyno's primary process: forks a fixed pool of WEB_CONCURRENCY workers and
// keeps it at that size. It opens no Redis or Postgres connection itself.
// 1. fork N workers; each serves PORT (node:cluster shares the socket);
// 2. a worker that dies is replaced, after a pause if they keep dying (no fork storm);
// 3. on SIGTERM/SIGINT: pass it on, wait for the workers to drain (they finish
//    in-flight requests), SIGKILL any still alive at the deadline, exit.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../log.js';

export interface PrimaryOptions {
  workers: number;
  log: Logger;
  /** Time the workers get to exit after SIGTERM (default 24 s). */
  deadlineMs?: number;
}

export function runPrimary(options: PrimaryOptions): void {
  const { log } = options;
  const deadlineMs = options.deadlineMs ?? 24_000;
  let stopping = false;
  const recentDeaths: number[] = [];

  const fork = () => {
    const worker = cluster.fork();
    worker.on('error', (err) => log.warn(`cluster: worker ${worker.id}: ${err.message}`));
  };

  cluster.on('exit', (worker: Worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        log.info('cluster: all workers stopped');
        process.exit(0);
      }
      return;
    }
    const now = Date.now();
    recentDeaths.push(now);
    while (recentDeaths.length > 0 && recentDeaths[0]! < now - 60_000) recentDeaths.shift();
    const delayMs = recentDeaths.length > options.workers * 2 ? 5_000 : 0;
    log.warn(`cluster: worker ${worker.id} died (${signal ?? `code ${code}`}); starting another${delayMs ? ` in ${delayMs} ms` : ''}`);
    setTimeout(() => {
      if (!stopping) fork();
    }, delayMs);
  });

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info(`cluster: ${signal} received, stopping ${Object.keys(cluster.workers ?? {}).length} worker(s)`);
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    setTimeout(() => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
      log.error(`cluster: workers still running ${deadlineMs} ms after ${signal}; killed`);
      process.exit(1);
    }, deadlineMs).unref();
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  for (let i = 0; i < options.workers; i++) fork();
  log.info(`cluster: primary ${process.pid} started ${options.workers} worker(s)`);
}
