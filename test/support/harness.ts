// The whole system in one test process, on real services: a fresh database, a fresh
// queue on the machine's Redis, a capturing SMTP server, the Express app (for
// supertest) and, when asked, a real BullMQ worker running the real processor.
import type { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Express } from 'express';
import { createLogger } from '../../src/log.js';
import { createMailer, createTransport } from '../../src/mail/mailer.js';
import { createDownloadsQueue, type DownloadsQueue } from '../../src/queue/downloads.js';
import { ConnectionFactory, whenReady } from '../../src/redis/connection-factory.js';
import { createApp } from '../../src/web/app.js';
import { createDownloadsWorker } from '../../src/worker/downloads-worker.js';
import { createRenderProcessor } from '../../src/worker/render-job.js';
import { startMailCatcher, type MailCatcher } from '../../src/local/mail-catcher.js';
import type { PrismaClient } from '../../src/generated/prisma/client.js';
import { createTestDatabase, REDIS_URL, testDb, uniqueName, type TestDatabase } from './services.js';

export interface Harness {
  app: Express;
  /** The web side's one shared Redis client. */
  redis: Redis;
  db: PrismaClient;
  queue: DownloadsQueue;
  queueName: string;
  mail: MailCatcher;
  database: TestDatabase;
  startWorker(options?: { smtpUrl?: string; concurrency?: number }): Worker;
  counts(): Promise<{ rows: number; jobs: number; mails: number }>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  maxPages?: number;
  downloadTtlMs?: number;
  now?: () => Date;
  rateLimits?: { perIpPer10Minutes: number; perEmailPerHour: number };
  /** Reach the test database through this URL instead (e.g. a fault-injecting proxy). */
  databaseUrl?: (url: string) => Promise<string> | string;
  redisUrl?: string;
  adminPassword?: string;
  sessionSecret?: string;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const database = await createTestDatabase();
  const databaseUrl = options.databaseUrl ? await options.databaseUrl(database.url) : database.url;
  const redisUrl = options.redisUrl ?? REDIS_URL;
  const db = testDb(databaseUrl);
  const mail = await startMailCatcher();
  const queueName = uniqueName('test-downloads');
  const log = createLogger({ process: 'test', level: 'silent' });
  const webRedis = new ConnectionFactory({ url: redisUrl, processName: `test-web-${queueName}`, allotment: 1, profile: 'fail-fast' });
  const redis = webRedis.open('shared');
  await whenReady(redis);
  const queue = createDownloadsQueue(queueName, redis);
  const config = {
    isProduction: false,
    maxPages: options.maxPages ?? 20,
    downloadTtlMs: options.downloadTtlMs ?? 86_400_000,
    sessionSecret: options.sessionSecret ?? 'test-session-secret-test-session-secret',
    rateLimits: options.rateLimits ?? { perIpPer10Minutes: 10_000, perEmailPerHour: 10_000 },
    keyPrefix: `nanoscale-test:${queueName}`,
    adminPassword: options.adminPassword,
  };
  const app = createApp({ db, queue, redis, log, config, now: options.now });
  const workers: Array<{ worker: Worker; factory: ConnectionFactory; close: () => void }> = [];

  return {
    app,
    redis,
    db,
    queue,
    queueName,
    mail,
    database,
    startWorker(workerOptions = {}) {
      const factory = new ConnectionFactory({ url: redisUrl, processName: `test-worker-${queueName}-${workers.length}`, allotment: 2, profile: 'patient' });
      const mailer = createMailer({ transport: createTransport(workerOptions.smtpUrl ?? mail.url), from: 'test <test@nanoscale.invalid>' });
      const worker = createDownloadsWorker({
        queueName,
        connection: factory.open('shared'),
        processName: `test-worker-${workers.length}`,
        concurrency: workerOptions.concurrency,
        processor: createRenderProcessor({ db, mailer, log, progressIntervalMs: 0 }),
      });
      worker.on('error', () => {});
      workers.push({ worker, factory, close: () => mailer.close() });
      return worker;
    },
    async counts() {
      const jobs = await queue.getJobCountByTypes('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized');
      return { rows: await db.download.count(), jobs, mails: mail.messages.length };
    },
    async close() {
      for (const w of workers) {
        await w.worker.close(true);
        await w.factory.closeAll();
        w.close();
      }
      await queue.obliterate({ force: true }).catch(() => {});
      const keys = await redis.keys(`nanoscale-test:${queueName}:*`).catch(() => [] as string[]);
      if (keys.length > 0) await redis.del(...keys).catch(() => {});
      await queue.close();
      await webRedis.closeAll();
      await db.$disconnect();
      await mail.close();
      await database.drop();
    },
  };
}

/** A raw client for assertions that must not count against any process. */
export function observer(): Redis {
  return new Redis(REDIS_URL, { connectionName: 'nanoscale-test-observer' });
}
