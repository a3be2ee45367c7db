// The worker dyno is killed (SIGKILL, no goodbye) in the middle of rendering, several
// times: every download still ends `ready`, and each person gets exactly one email.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDownload } from '../../src/db/downloads.js';
import { startMailCatcher, type MailCatcher } from '../../src/local/mail-catcher.js';
import { createDownloadsQueue, enqueueDownload, type DownloadsQueue } from '../../src/queue/downloads.js';
import { ConnectionFactory } from '../../src/redis/connection-factory.js';
import { startProcess, type TestProcess } from '../support/processes.js';
import { createTestDatabase, REDIS_URL, testDb, uniqueName, waitFor, type TestDatabase } from '../support/services.js';

let database: TestDatabase;
let mail: MailCatcher;
let db: ReturnType<typeof testDb>;
let queue: DownloadsQueue;
let redis: ConnectionFactory;
let env: Record<string, string>;
const workers: TestProcess[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  db = testDb(database.url);
  mail = await startMailCatcher();
  const queueName = uniqueName('killed');
  redis = new ConnectionFactory({ url: REDIS_URL, processName: 'test-killed', allotment: 1, profile: 'patient' });
  queue = createDownloadsQueue(queueName, redis.open('shared'));
  env = {
    REDIS_URL, DATABASE_URL: database.url, SMTP_URL: mail.url, QUEUE_NAME: queueName, MAX_PAGES: '1000',
    AUTOSCALER: 'off', WORKER_CONCURRENCY: '2', JOB_LOCK_TIMEOUT: '2',
  };
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  await queue?.obliterate({ force: true }).catch(() => {});
  await queue?.close();
  await redis?.closeAll();
  await db?.$disconnect();
  await mail?.close();
  await database?.drop();
});

function startWorker(n: number) {
  const w = startProcess('worker/main.js', { ...env, DYNO: `worker.${n}` });
  workers.push(w);
  return w;
}

describe('worker killed mid-job', () => {
  it('SIGKILL while rendering, three times → every download ready, one "ready" email each', async () => {
    const rows = [];
    for (let i = 0; i < 4; i++) {
      rows.push(await createDownload(db, { email: `k${i}@example.com`, title: `Killed ${i}`, pages: 150, origin: 'http://x' }, { now: new Date(), ttlMs: 3_600_000 }));
    }
    for (const r of rows) await enqueueDownload(queue, r.id);

    for (let kill = 1; kill <= 3; kill++) {
      const w = startWorker(kill);
      await w.waitForLine(/worker: ready/);
      await waitFor(async () => (await db.download.count({ where: { status: 'processing', progress: { gt: 5, lt: 90 } } })) > 0, { timeoutMs: 20_000, intervalMs: 50, what: 'a job mid-render' });
      const exit = await w.stop('SIGKILL');
      expect(exit.signal).toBe('SIGKILL');
    }
    startWorker(4);
    await waitFor(async () => (await db.download.count({ where: { status: 'ready' } })) === rows.length, { timeoutMs: 60_000, intervalMs: 250, what: 'all ready' });
    await waitFor(async () => mail.messages.length >= rows.length, { timeoutMs: 10_000, what: 'all mailed' });
    await new Promise((r) => setTimeout(r, 1_000));
    for (const r of rows) {
      expect(mail.messages.filter((m) => m.to.includes(r.email)).map((m) => m.subject), r.email).toEqual(['Your download is ready']);
    }
    // The kills really interrupted work: some rows were rendered more than once.
    const attempts = await db.download.findMany({ select: { attempts: true } });
    expect(attempts.reduce((sum, a) => sum + a.attempts, 0)).toBeGreaterThan(rows.length);
  }, 120_000);
});
