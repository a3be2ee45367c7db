// The smallest plans had 5 MB of Redis. Payloads hold only ids, and finished jobs and
// events are kept in bounded numbers, so 2,000 downloads leave Redis less than 1 MB
// bigger than before them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createDownload } from '../../src/db/downloads.js';
import { startRedisServer, type LocalRedis } from '../../src/local/redis-server.js';
import { enqueueDownload } from '../../src/queue/downloads.js';
import { startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/services.js';

const JOBS = 2_000;
let redis: LocalRedis;
let h: Harness;
let observer: Redis;

beforeAll(async () => {
  redis = await startRedisServer({ maxClients: 50 });
  h = await startHarness({ redisUrl: redis.url });
  observer = new Redis(redis.url);
});
afterAll(async () => {
  observer?.disconnect();
  await h?.close();
  await redis?.stop();
});

async function usedMemory(): Promise<number> {
  const info = await observer.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

describe('Redis memory', () => {
  it(`${JOBS} downloads → used_memory grows by less than 1 MB`, async () => {
    h.startWorker({ concurrency: 8 });
    // Warm up: the queue's keys, scripts and the worker exist before the baseline.
    const warm = await createDownload(h.db, { email: 'warm@example.com', title: 'w', pages: 1, origin: 'http://x' }, { now: new Date(), ttlMs: 3_600_000 });
    await enqueueDownload(h.queue, warm.id);
    await h.mail.waitFor((m) => m.to.includes('warm@example.com'));
    const before = await usedMemory();

    for (let i = 0; i < JOBS; i += 100) {
      const rows = await Promise.all(
        Array.from({ length: 100 }, (_, k) => createDownload(h.db, { email: `m${i + k}@example.com`, title: `Doc ${i + k}`, pages: 1, origin: 'http://x' }, { now: new Date(), ttlMs: 3_600_000 })),
      );
      await Promise.all(rows.map((r) => enqueueDownload(h.queue, r.id)));
    }
    await waitFor(async () => (await h.db.download.count({ where: { status: 'ready' } })) === JOBS + 1, { timeoutMs: 240_000, intervalMs: 1_000, what: 'all rendered' });
    await waitFor(async () => h.mail.messages.length === JOBS + 1, { timeoutMs: 30_000, what: 'all mailed' });
    const after = await usedMemory();
    const growth = after - before;
    console.log(`redis used_memory: ${before} → ${after} bytes (+${growth}) after ${JOBS} jobs`);
    expect(growth).toBeLessThan(1024 * 1024);
    const counts = await h.queue.getJobCounts('completed', 'failed');
    expect(counts.completed).toBeLessThanOrEqual(100);
    expect(counts.failed).toBe(0);
  }, 300_000);
});
