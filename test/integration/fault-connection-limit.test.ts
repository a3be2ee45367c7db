// Another client takes every free connection slot of a 10-connection Redis, and the
// web's connections drop. Requests are still accepted (they wait as `queued` rows),
// the web backs off instead of hammering Redis with reconnects, and once slots free
// up it reconnects by itself and every accepted download completes.
import net from 'node:net';
import { Redis } from 'ioredis';
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
const processes: TestProcess[] = [];
const hogs: net.Socket[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  mail = await startMailCatcher();
  redis = await startRedisServer({ maxClients: 10 });
});
afterAll(async () => {
  for (const h of hogs) h.destroy();
  await Promise.all(processes.map((p) => p.stop('SIGKILL')));
  await redis?.stop();
  await mail?.close();
  await database?.drop();
});

/** Opens raw connections until the server refuses one: every free slot is taken. */
async function takeAllSlots(port: number): Promise<void> {
  for (;;) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('data', (d) => {
        if (d.toString().includes('max number of clients')) {
          s.destroy();
          resolve(true);
        }
      });
      s.once('error', () => resolve(true));
      // Accepted sockets send nothing until asked: ask, and keep the slot.
      s.once('connect', () => {
        s.write('PING\r\n');
        s.once('data', (d) => {
          if (d.toString().startsWith('+PONG')) {
            hogs.push(s);
            resolve(false);
          }
        });
      });
    });
    if (refused) return;
  }
}

async function stat(admin: Redis, field: string): Promise<number> {
  return Number(new RegExp(`${field}:(\\d+)`).exec(await admin.info())![1]);
}

describe('Redis connection limit reached', () => {
  it('requests accepted while the web cannot reach Redis; reconnects back off; recovery when slots free up', async () => {
    const port = await freePort();
    const env = {
      REDIS_URL: redis.url, DATABASE_URL: database.url, SMTP_URL: mail.url, QUEUE_NAME: uniqueName('limit'),
      AUTOSCALER: 'off', AUTOSCALE_INTERVAL: '1', RATE_LIMIT_PER_IP: '100000', WEB_DYNOS: '1',
    };
    const { web, worker } = await startFormation(env, port);
    processes.push(web, worker);
    const base = `http://127.0.0.1:${port}`;
    expect((await postDownload(base, { email: 'before@example.com', title: 'Before', pages: '1' })).status).toBe(303);

    // One admin connection for us, then every other free slot for the hog.
    const admin = new Redis(redis.url, { connectionName: 'test-admin' });
    await admin.ping();
    await takeAllSlots(redis.port);
    const webAddrs = ((await admin.client('LIST')) as string).split('\n').filter((l) => / name=nanoscale:web\.1\//.test(l)).map((l) => / addr=(\S+)/.exec(l)![1]!);
    expect(webAddrs).toHaveLength(2);
    const rejectedBefore = await stat(admin, 'rejected_connections');
    for (const addr of webAddrs) await admin.client('KILL', 'ADDR', addr);
    // Their slots go to the hog before the web's first reconnect (≥ 400 ms later).
    await takeAllSlots(redis.port);

    const during: number[] = [];
    for (let i = 0; i < 6; i++) during.push((await postDownload(base, { email: `during${i}@example.com`, title: 'During', pages: '1' })).status);
    await new Promise((r) => setTimeout(r, 5_000));
    const rejected = (await stat(admin, 'rejected_connections')) - rejectedBefore;
    expect(during).toEqual([303, 303, 303, 303, 303, 303]);
    // Two clients retrying with a capped exponential back-off: a handful each, not a storm.
    expect(rejected).toBeGreaterThan(0);
    expect(rejected).toBeLessThan(30);

    for (const h of hogs.splice(0)) h.destroy();
    const db = testDb(database.url);
    try {
      await waitFor(async () => (await db.download.count({ where: { status: 'ready' } })) === 7, { timeoutMs: 40_000, intervalMs: 500, what: 'all ready after recovery' });
    } finally {
      await db.$disconnect();
    }
    expect(web.child.exitCode).toBeNull();
    admin.disconnect();
  }, 90_000);
});
