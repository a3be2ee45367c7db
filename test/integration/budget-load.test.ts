// The connection budget, proven under load with the seed's formation run for real
// from dist/ (run `npm run build` first): a private `redis-server --maxclients 10`,
// two web dynos (web.1, web.2: cluster primaries with WEB_CONCURRENCY=3 each, on two
// ports), one worker dyno (WORKER_CONCURRENCY=2), the machine's Postgres and a
// capturing SMTP server. One observer connection sits in the reserve and samples
// INFO clients every ~50 ms while ≥ 300 requests go in over both dynos.
// Then: a formation one process per dyno bigger refuses to start, with the table.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { parseInfo } from '../../src/budget/live.js';
import type { PrismaClient } from '../../src/generated/prisma/client.js';
import { freePort } from '../../src/local/free-port.js';
import { startMailCatcher, type MailCatcher } from '../../src/local/mail-catcher.js';
import { startRedisServer, type LocalRedis } from '../../src/local/redis-server.js';
import { startProcess, type TestProcess } from '../support/processes.js';
import { createTestDatabase, testDb, uniqueName, waitFor, type TestDatabase } from '../support/services.js';

const REQUESTS = 300;
const IN_FLIGHT = 12;
const LIMIT = 10;
/** 2 web dynos × 3 processes × 1 + 1 worker dyno × 2 + the observer (1 of the 2 reserved). */
const FORMATION_AND_OBSERVER = 2 * 3 * 1 + 2 + 1;

let redis: LocalRedis;
let database: TestDatabase;
let db: PrismaClient;
let mail: MailCatcher;
let observer: Redis;
let env: Record<string, string>;
const redisLog: string[] = [];
const running: TestProcess[] = [];

function start(script: string, extra: Record<string, string>): TestProcess {
  const p = startProcess(script, { ...env, ...extra });
  running.push(p);
  return p;
}

const countBy = (values: unknown[]) => values.reduce<Record<string, number>>((acc, v) => ({ ...acc, [String(v)]: (acc[String(v)] ?? 0) + 1 }), {});

/** GET / as a browser would: the form's CSRF token and the cookies it is bound to. */
async function openForm(port: number): Promise<{ cookie: string; csrf: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  const html = await res.text();
  const csrf = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  if (res.status !== 200 || !csrf) throw new Error(`GET / on ${port}: ${res.status}, no CSRF token`);
  return { cookie: res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; '), csrf };
}

async function infoOf(section: 'clients' | 'stats'): Promise<Record<string, string>> {
  return parseInfo(await observer.info(section));
}

beforeAll(async () => {
  redis = await startRedisServer({ maxClients: LIMIT, onLog: (line) => redisLog.push(line) });
  // The observer connects first, so it holds a reserved slot before the formation starts.
  observer = new Redis(redis.url, { connectionName: 'nanoscale:test-observer:reserved', maxRetriesPerRequest: 1 });
  await new Promise((resolve, reject) => {
    observer.once('ready', resolve);
    observer.once('error', reject);
  });
  database = await createTestDatabase();
  db = testDb(database.url);
  mail = await startMailCatcher();
  env = {
    REDIS_URL: redis.url,
    DATABASE_URL: database.url,
    SMTP_URL: mail.url,
    QUEUE_NAME: uniqueName('load'),
    WEB_DYNOS: '2',
    REDIS_MAX_CONNECTIONS: String(LIMIT),
    REDIS_RESERVED_CONNECTIONS: '2',
    MAX_PAGES: '5',
    // One secret for the whole formation (a config var on Heroku): a form from one dyno posts to the other.
    SESSION_SECRET: 'budget-load-test-session-secret-0123456789abcdef',
    // Every request comes from 127.0.0.1: the per-IP limit would refuse the load for the wrong reason.
    // The limiter still counts each request in Redis, on each process's one shared connection.
    RATE_LIMIT_PER_IP: '1000000',
  };
}, 60_000);

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop('SIGTERM')));
  observer?.disconnect();
  await db?.$disconnect();
  await mail?.close();
  await database?.drop();
  await redis?.stop();
}, 60_000);

describe('the seed formation on a 10-connection Redis', { timeout: 120_000 }, () => {
  const ports: number[] = [];
  let formation: TestProcess[] = [];

  beforeAll(async () => {
    ports.push(await freePort(), await freePort());
    const webs = ports.map((port, i) => start('web/main.js', { DYNO: `web.${i + 1}`, PORT: String(port), WEB_CONCURRENCY: '3' }));
    const worker = start('worker/main.js', { DYNO: 'worker.1', WORKER_CONCURRENCY: '2' });
    formation = [...webs, worker];
    for (const web of webs) {
      await waitFor(async () => web.output.filter((l) => l.includes('web: listening')).length === 3, { what: '3 listening web processes', timeoutMs: 30_000 });
    }
    await worker.waitForLine(/worker: ready/);
    // Everyone connected (the worker's blocking connection comes a moment after "ready").
    await waitFor(async () => Number((await infoOf('clients')).connected_clients) === FORMATION_AND_OBSERVER, {
      what: `${FORMATION_AND_OBSERVER} connected clients`,
      timeoutMs: 15_000,
    });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(formation.map((p) => p.stop('SIGTERM')));
  }, 30_000);

  it(`${REQUESTS} requests over both web dynos → all accepted, all rendered, one email each; peak ≤ ${LIMIT}, none rejected`, async () => {
    let peak = 0;
    let samples = 0;
    let sampling = true;
    const samplerErrors: unknown[] = [];
    const sampler = (async () => {
      while (sampling) {
        try {
          const connected = Number((await infoOf('clients')).connected_clients);
          peak = Math.max(peak, connected);
          samples += 1;
        } catch (err) {
          samplerErrors.push(err);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    const started = Date.now();
    const statuses: number[] = new Array(REQUESTS);
    let next = 0;
    // Each of the IN_FLIGHT clients is a browser: it loads the form once (cookies + CSRF
    // token), then sends its share of the requests, alternating between the two dynos.
    const client = async (_: unknown, c: number) => {
      const { cookie, csrf } = await openForm(ports[c % ports.length]!);
      while (next < REQUESTS) {
        const i = next++;
        const res = await fetch(`http://127.0.0.1:${ports[i % ports.length]}/downloads`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
          body: new URLSearchParams({ _csrf: csrf, email: `load-${i}@example.com`, title: `Load ${i}`, pages: '1' }).toString(),
          redirect: 'manual',
        });
        await res.arrayBuffer();
        statuses[i] = res.status;
      }
    };
    try {
      await Promise.all(Array.from({ length: IN_FLIGHT }, client));
      const acceptedMs = Date.now() - started;
      await waitFor(
        async () => (await db.download.count({ where: { status: 'ready', emailedAt: { not: null } } })) === REQUESTS && mail.messages.length >= REQUESTS,
        { what: `${REQUESTS} ready rows and emails`, timeoutMs: 60_000, intervalMs: 250 },
      ).catch(async (err: Error) => {
        const rows = await db.download.groupBy({ by: ['status'], _count: true });
        const tail = formation.map((p) => p.output.slice(-8).join('\n')).join('\n---\n');
        throw new Error(`${err.message}: rows ${JSON.stringify(rows)}, ${mail.messages.length} emails, statuses ${JSON.stringify(countBy(statuses))}\n${tail}`);
      });
      const doneMs = Date.now() - started;
      // Room for a duplicate email to show up, were there one.
      await new Promise((r) => setTimeout(r, 1_000));
      sampling = false;
      await sampler;
      console.log(
        `budget-load: ${REQUESTS} requests accepted in ${acceptedMs} ms, all rendered and emailed in ${doneMs} ms; ` +
          `peak connected_clients ${peak} of ${LIMIT} (${samples} samples, observer included)`,
      );

      expect(statuses.filter((s) => s !== 303)).toEqual([]);
      expect(await db.download.groupBy({ by: ['status'], _count: true })).toEqual([{ status: 'ready', _count: REQUESTS }]);
      const perAddress = new Map<string, number>();
      for (const m of mail.messages) for (const to of m.to) perAddress.set(to, (perAddress.get(to) ?? 0) + 1);
      expect(perAddress.size).toBe(REQUESTS);
      expect([...perAddress.values()].filter((n) => n !== 1)).toEqual([]);
      expect(mail.messages).toHaveLength(REQUESTS);

      expect(samplerErrors).toEqual([]);
      expect(samples).toBeGreaterThan(10);
      expect(peak).toBeGreaterThanOrEqual(FORMATION_AND_OBSERVER);
      expect(peak).toBeLessThanOrEqual(LIMIT);
      expect(Number((await infoOf('stats')).rejected_connections)).toBe(0);
      const output = [...formation.flatMap((p) => p.output), ...redisLog].join('\n');
      expect(output).not.toMatch(/max number of clients reached/i);
      // Every enqueue went straight to Redis: none was left for the reconciler.
      expect(output).not.toMatch(/left for the reconciler/);
    } finally {
      sampling = false;
      await sampler;
    }
  });
});

describe('a formation over the limit', { timeout: 60_000 }, () => {
  it('WEB_CONCURRENCY=4 on 2 web dynos → web and worker exit 1 with the table, naming WEB_CONCURRENCY, and connect nothing', async () => {
    await waitFor(async () => Number((await infoOf('clients')).connected_clients) === 1, { what: 'only the observer connected' });
    const over = { WEB_CONCURRENCY: '4', PORT: String(await freePort()) };
    const web = start('web/main.js', { ...over, DYNO: 'web.1' });
    const worker = start('worker/main.js', { ...over, DYNO: 'worker.1' });
    for (const p of [web, worker]) {
      const exit = await p.exited;
      const output = p.output.join('\n');
      expect(exit.code).toBe(1);
      expect(output).toContain('web       2 dynos × 4 processes × 1');
      expect(output).toMatch(/total 10 \/ 10 \(headroom 0\)/);
      expect(output).toMatch(/Redis connections \(room for 0 worker dynos\)/);
      expect(output).toMatch(/no worker dyno fits .* Lower WEB_CONCURRENCY or WEB_DYNOS/);
    }
    expect(Number((await infoOf('clients')).connected_clients)).toBe(1);
    expect(Number((await infoOf('stats')).rejected_connections)).toBe(0);
  });
});
