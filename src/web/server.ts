// One web cluster worker: wires the app to its dependencies and serves PORT (the
// cluster primary shares the socket). One Redis connection for everything.
// On SIGTERM: stop accepting, let in-flight requests finish, close, exit.
import type { Server } from 'node:http';
import type { Config } from '../config.js';
import { autoscalerFromConfig } from '../autoscaler/from-config.js';
import { checkBudget } from '../budget/boot-check.js';
import { REDIS_CONNECTIONS } from '../budget/costs.js';
import { createDb } from '../db/client.js';
import { onShutdownSignal } from '../lifecycle.js';
import { createLogger } from '../log.js';
import { createDownloadsQueue } from '../queue/downloads.js';
import { startReconcileLoop } from '../queue/reconcile-loop.js';
import { ConnectionFactory, whenReady } from '../redis/connection-factory.js';
import { createApp } from './app.js';

/** Time in-flight requests get after SIGTERM before their sockets are cut. */
const DRAIN_MS = 20_000;

export async function runServer(config: Config, processName: string): Promise<Server> {
  const log = createLogger({ process: processName, level: config.logLevel });
  const redis = new ConnectionFactory({
    url: config.redisUrl,
    processName,
    allotment: REDIS_CONNECTIONS.webProcess,
    profile: 'fail-fast',
    tlsRejectUnauthorized: config.redisTlsRejectUnauthorized,
    onError: (role, err) => log.warn(`redis: ${role} connection: ${err.message}`),
  });
  const shared = redis.open('shared');
  // Serve once Redis answers (commands fail fast while it is away); if it is down
  // at boot, serve anyway: requests are accepted and wait as `queued` rows.
  if (!(await whenReady(shared, 5_000))) log.warn('redis: not reachable yet; serving anyway, enqueues wait for the reconciler');
  const queue = createDownloadsQueue(config.queueName, shared);
  queue.on('error', (err) => log.warn(`queue: ${err.message}`));
  const db = createDb({ url: config.databaseUrl, poolSize: config.webDatabasePoolSize, processName });
  // The primary passed this check already; it gives the same plan (and WEB_CONCURRENCY) here.
  const { plan } = checkBudget(config);
  const autoscaler = autoscalerFromConfig(config, { redis: shared, queue, log, processName, plan });
  autoscaler?.start();
  const app = createApp({
    db,
    queue,
    redis: shared,
    log,
    config,
    // Off the request path: notifyEnqueued returns at once and never throws.
    onEnqueued: () => autoscaler?.notifyEnqueued(),
    status: { plan, processName, autoscalerStatus: async () => (autoscaler ? autoscaler.status() : null) },
  });

  const reconciler = startReconcileLoop({ redis: shared, db, queue, log, intervalMs: config.reconcileIntervalMs });

  const server = app.listen(config.port);
  // Longer than the Heroku router's 55 s idle timeout, so the router closes first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  log.info(`web: listening on port ${config.port}`);

  onShutdownSignal(log, async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const cut = setTimeout(() => server.closeAllConnections(), DRAIN_MS);
    await closed;
    clearTimeout(cut);
    await reconciler.stop();
    await autoscaler?.stop();
    await queue.close();
    await redis.closeAll();
    await db.$disconnect();
  });
  return server;
}
