// The database is the truth: a row whose job Redis never got (or forgot) is enqueued
// again by the periodic reconcile, once, whichever web process holds the lock.
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDownload } from '../../src/db/downloads.js';
import { createLogger } from '../../src/log.js';
import { startReconcileLoop } from '../../src/queue/reconcile-loop.js';
import { reconcileDownloads } from '../../src/queue/reconciler.js';
import { startHarness, type Harness } from '../support/harness.js';
import { REDIS_URL, waitFor } from '../support/services.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h?.close());

const log = createLogger({ process: 'test', level: 'silent' });
const newRow = (email: string) => createDownload(h.db, { email, title: 't', pages: 1, origin: 'http://x' }, { now: new Date(), ttlMs: 3_600_000 });

describe('reconciler', () => {
  it('a queued row without a job → enqueued by the loop (two processes, one lock), with job id = row id', async () => {
    const row = await newRow('lost@example.com');
    const loops = [1, 2].map(() => startReconcileLoop({ redis: h.redis, db: h.db, queue: h.queue, log, intervalMs: 300 }));
    try {
      const job = await waitFor(() => h.queue.getJob(row.id), { timeoutMs: 5_000, what: 'job re-enqueued' });
      expect(job.data).toEqual({ downloadId: row.id });
      expect((await h.db.download.findUniqueOrThrow({ where: { id: row.id } })).enqueuedAt).toBeInstanceOf(Date);
      const waiting = await h.queue.getJobs(['waiting']);
      expect(waiting.filter((j) => j.name === 'render').map((j) => j.id)).toEqual([row.id]);
      expect((await h.queue.getJobSchedulers()).map((s) => s.key)).toEqual(['cleanup']);
    } finally {
      await Promise.all(loops.map((l) => l.stop()));
    }
  });

  it('a row that has its job, or is finished, or too fresh → left alone', async () => {
    const fresh = await newRow('fresh@example.com');
    const result = await reconcileDownloads(h.db, h.queue, { now: new Date(), graceMs: 60_000 });
    expect(result.enqueued).not.toContain(fresh.id);
    const again = await reconcileDownloads(h.db, h.queue, { now: new Date(Date.now() + 120_000), graceMs: 60_000 });
    expect(again.enqueued).toEqual([fresh.id]);
    const third = await reconcileDownloads(h.db, h.queue, { now: new Date(Date.now() + 120_000), graceMs: 60_000 });
    expect(third.enqueued).toEqual([]);
  });

  it('made but its email failed every attempt → tried again only after emailRetryMs; a stuck row whose job failed → re-enqueued at once', async () => {
    const made = await newRow('unmailed@example.com');
    await h.db.download.update({ where: { id: made.id }, data: { status: 'ready' } });
    const stuck = await newRow('stuck@example.com');
    await h.db.download.update({ where: { id: stuck.id }, data: { status: 'processing' } });
    for (const id of [made.id, stuck.id]) await h.queue.add('render', { downloadId: id }, { jobId: id, attempts: 1 });
    // A worker whose every attempt fails (its own connections: this test is not a budgeted process).
    const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const w = new Worker(h.queueName, async () => {
      throw new Error('smtp down');
    }, { connection });
    try {
      await waitFor(async () => (await h.queue.getJobState(made.id)) === 'failed' && (await h.queue.getJobState(stuck.id)) === 'failed', { what: 'both failed' });
    } finally {
      await w.close();
      connection.disconnect();
    }
    const later = (ms: number) => new Date(Date.now() + ms);
    const soon = await reconcileDownloads(h.db, h.queue, { now: later(60_000), graceMs: 1_000, emailRetryMs: 600_000 });
    expect(soon.enqueued).toContain(stuck.id);
    expect(soon.enqueued).not.toContain(made.id);
    const after = await reconcileDownloads(h.db, h.queue, { now: later(700_000), graceMs: 1_000, emailRetryMs: 600_000 });
    expect(after.enqueued).toContain(made.id);
    expect(await h.queue.getJobState(made.id)).toBe('waiting');
  });
});
