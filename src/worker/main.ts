// The Procfile's `worker` process: one BullMQ Worker (concurrency WORKER_CONCURRENCY)
// running render jobs (and the hourly cleanup).
// Two Redis connections, whatever the concurrency. On SIGTERM: stop taking jobs,
// let active ones finish for up to 22 s, close everything, exit (all within 25 s).
import { loadConfig } from '../config.js';
import { autoscalerFromConfig } from '../autoscaler/from-config.js';
import { checkBudget } from '../budget/boot-check.js';
import { REDIS_CONNECTIONS } from '../budget/costs.js';
import { createDb } from '../db/client.js';
import { exitOnBootError, onShutdownSignal } from '../lifecycle.js';
import { createLogger, reportError } from '../log.js';
import { createMailer, createTransport } from '../mail/mailer.js';
import { createDownloadsQueue } from '../queue/downloads.js';
import { ConnectionFactory } from '../redis/connection-factory.js';
import { createDownloadsWorker, stopWorker } from './downloads-worker.js';
import { createRenderProcessor } from './render-job.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const { plan } = checkBudget(config);
  const processName = config.dyno;
  const log = createLogger({ process: processName, level: config.logLevel });
  const redis = new ConnectionFactory({
    url: config.redisUrl,
    processName,
    allotment: REDIS_CONNECTIONS.workerProcess,
    profile: 'patient',
    tlsRejectUnauthorized: config.redisTlsRejectUnauthorized,
    onError: (role, err) => log.warn(`redis: ${role} connection: ${err.message}`),
  });
  const shared = redis.open('shared');
  const db = createDb({ url: config.databaseUrl, poolSize: config.workerDatabasePoolSize, processName });
  const mailer = createMailer({ transport: createTransport(config.smtpUrl, config.workerConcurrency), from: config.mailFrom });
  const queue = createDownloadsQueue(config.queueName, shared);
  queue.on('error', reportError(log, 'queue'));
  const worker = createDownloadsWorker({
    queueName: config.queueName,
    connection: shared,
    processName,
    concurrency: config.workerConcurrency,
    lockMs: config.jobLockMs,
    processor: createRenderProcessor({ db, mailer, log }),
  });
  worker.on('error', reportError(log, 'worker'));
  worker.on('failed', (job, err) =>
    log.warn({ jobId: job?.id, attemptsMade: job?.attemptsMade }, `job: ${job?.id} failed: ${err.message}`),
  );

  // The idle monitor: after each job this process finishes, look again (down to zero
  // once IDLE_TIMEOUT passes with nothing pending or active anywhere).
  const autoscaler = autoscalerFromConfig(config, { redis: shared, queue, log, processName, plan });
  autoscaler?.start();
  worker.on('completed', () => void autoscaler?.tick());
  worker.on('failed', () => void autoscaler?.tick());

  onShutdownSignal(log, async () => {
    // Stop taking jobs at once; the autoscaler may be waiting on Redis or the platform.
    const [outcome] = await Promise.all([stopWorker(worker, 22_000), autoscaler?.stop()]);
    log.info(`worker: stopped (${outcome})`);
    await queue.close();
    await redis.closeAll();
    await db.$disconnect();
    mailer.close();
  });
  log.info(`worker: ready, queue=${config.queueName} concurrency=${config.workerConcurrency}`);
}

main().catch((err: unknown) => exitOnBootError(err, 'worker'));
