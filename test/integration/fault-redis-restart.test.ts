// Redis restarts empty (like the smallest plans, it keeps nothing on disk) while
// requests and jobs are flowing. Every request the web tier accepted ends `ready`:
// the rows are the truth and the reconciler re-enqueues those whose job was lost.
// Processes reconnect by themselves, none crash-loops, and while Redis is down the
// form still accepts requests (they wait as `queued`) — never a 500 page.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/local/free-port.js';
import { startMailCatcher, type MailCatcher } from '../../src/local/mail-catcher.js';
import { startRedisServer, type LocalRedis } from '../../src/local/redis-server.js';
import { postDownload } from '../support/form.js';
import { startFormation, type TestProcess } from '../support/processes.js';
import { createTestDatabase, testDb, uniqueName, waitFor, type TestDatabase } from '../support/services.js';

let database: TestDatabase;
let mail: MailCatcher;
let redis: LocalRedis;
let redisPort: number;
const processes: TestProcess[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  mail = await startMailCatcher();
  redisPort = await freePort();
  redis = await startRedisServer({ port: redisPort, maxClients: 20 });
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop('SIGKILL')));
  await redis?.stop();
  await mail?.close();
  await database?.drop();
});

describe('Redis restarted under load', () => {
  it('every accepted request ends ready with one email; no 5xx; processes reconnect without restarting', async () => {
    const port = await freePort();
    const env = {
      REDIS_URL: redis.url, DATABASE_URL: database.url, SMTP_URL: mail.url, QUEUE_NAME: uniqueName('restart'),
      AUTOSCALER: 'off', AUTOSCALE_INTERVAL: '1', JOB_LOCK_TIMEOUT: '2', RATE_LIMIT_PER_IP: '100000', WEB_DYNOS: '1',
    };
    const { web, worker } = await startFormation(env, port);
    processes.push(web, worker);

    const base = `http://127.0.0.1:${port}`;
    const results: Array<{ email: string; status: number; body: string }> = [];
    let sent = 0;
    const client = async () => {
      while (sent < 60) {
        const email = `r${sent++}@example.com`;
        const res = await postDownload(base, { email, title: 'Restart', pages: '3' });
        results.push({ email, status: res.status, body: res.body });
        await new Promise((r) => setTimeout(r, 40));
      }
    };
    const load = Promise.all([client(), client(), client()]);

    await waitFor(async () => results.length >= 15, { intervalMs: 20, what: '15 requests' });
    await redis.stop();
    const downAt = results.length;
    await new Promise((r) => setTimeout(r, 1_500));
    redis = await startRedisServer({ port: redisPort, maxClients: 20 });
    await load;

    expect(results.length).toBe(60);
    expect(results.length - downAt).toBeGreaterThan(5);
    for (const r of results) {
      expect(r.status, `${r.email}: ${r.body.slice(0, 200)}`).toBeLessThan(500);
    }
    const accepted = results.filter((r) => r.status === 303).map((r) => r.email);
    expect(accepted.length).toBe(60);

    const db = testDb(database.url);
    try {
      await waitFor(async () => (await db.download.count({ where: { status: 'ready' } })) === accepted.length, { timeoutMs: 60_000, intervalMs: 500, what: 'all ready' });
    } finally {
      await db.$disconnect();
    }
    await waitFor(async () => new Set(mail.messages.flatMap((m) => m.to)).size === accepted.length, { timeoutMs: 15_000, what: 'all mailed' });
    for (const email of accepted) {
      expect(mail.messages.filter((m) => m.to.includes(email)), email).toHaveLength(1);
    }
    const all = [...web.output, ...worker.output].join('\n');
    expect(all).toMatch(/left for the reconciler/);
    expect(all).toMatch(/reconciler: re-enqueued/);
    expect(web.output.join('\n')).not.toMatch(/cluster: worker \d+ died/);
    expect(worker.child.exitCode).toBeNull();
    expect(web.child.exitCode).toBeNull();
  }, 120_000);
});
