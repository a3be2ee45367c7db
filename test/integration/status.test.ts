// The status page on real servers: the machine's Redis and Postgres (connections
// attributed by name, the plan beside them, the bar), a private redis-server for
// exact counts and a NOPERM user, and one with CLIENT and CONFIG renamed away, as
// some managed providers do: the page says what it cannot see instead of failing.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import express, { type Express } from 'express';
import { Redis } from 'ioredis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { budgetInputFromConfig, planBudget, type BudgetPlan } from '../../src/budget/plan.js';
import { loadBudgetConfig } from '../../src/config.js';
import { createDb } from '../../src/db/client.js';
import type { PrismaClient } from '../../src/generated/prisma/client.js';
import { freePort } from '../../src/local/free-port.js';
import { redisServerBinary, startRedisServer, stopChild, type LocalRedis } from '../../src/local/redis-server.js';
import { createLogger } from '../../src/log.js';
import { VIEWS_DIR } from '../../src/paths.js';
import { ConnectionFactory } from '../../src/redis/connection-factory.js';
import { errorHandler } from '../../src/web/error-handler.js';
import { statusRouter, type StatusDeps, type StatusReport } from '../../src/web/routes/status.js';
import { createTestDatabase, REDIS_URL, uniqueName, waitFor, type TestDatabase } from '../support/services.js';

// The config's defaults: the seed's formation (2 web dynos × 3 processes, 1 worker dyno, reserve 2, limit 10).
const plan: BudgetPlan = planBudget(budgetInputFromConfig(loadBudgetConfig({})));

const tag = randomBytes(3).toString('hex');
const webProcess = `web.${tag}/1`;
const workerProcess = `worker.${tag}`;
// 17 bytes: its base64 ends in '=', so CLIENT LIST's `name=bull:…=:w:…` must be split at the first '='.
const queueName = `${uniqueName('status')}-q`;
const blockingName = `bull:${Buffer.from(queueName).toString('base64')}:w:nanoscale:${workerProcess}:blocking`;

let database: TestDatabase;
let db: PrismaClient;
const factories: ConnectionFactory[] = [];
const raw: Redis[] = [];
const servers: Array<() => Promise<void>> = [];

function statusApp(deps: Omit<StatusDeps, 'db' | 'plan' | 'processName'> & Partial<StatusDeps>): Express {
  const app = express();
  app.set('view engine', 'ejs');
  app.set('views', VIEWS_DIR);
  app.use(statusRouter({ db, plan, processName: webProcess, ...deps }));
  app.use(errorHandler(createLogger({ process: 'test', level: 'silent' })));
  return app;
}

function factory(url: string, processName: string, allotment: number): ConnectionFactory {
  const f = new ConnectionFactory({ url, processName, allotment, profile: 'patient' });
  factories.push(f);
  return f;
}

function rawClient(url: string, name?: string): Redis {
  const r = new Redis(url, name ? { connectionName: name } : {});
  raw.push(r);
  return r;
}

const ready = (...clients: Redis[]) =>
  Promise.all(clients.map((c) => (c.status === 'ready' ? undefined : new Promise((resolve) => c.once('ready', resolve)))));

/** The formation's own connections, opened the way its processes open them. */
async function openFormation(url: string, web: string, worker: string, queue: string) {
  const shared = factory(url, web, 1).open('shared');
  const workerShared = factory(url, worker, 2).open('shared');
  const blocking = workerShared.duplicate({ connectionName: `bull:${Buffer.from(queue).toString('base64')}:w:nanoscale:${worker}:blocking` });
  await ready(shared, workerShared, blocking);
  return shared;
}

beforeAll(async () => {
  database = await createTestDatabase();
  // The web process's pool: application_name `nanoscale:web.<tag>/1`.
  db = createDb({ url: database.url, poolSize: 2, processName: webProcess });
});
afterAll(async () => {
  for (const f of factories) await f.closeAll();
  for (const r of raw) r.disconnect();
  await db?.$disconnect();
  for (const stop of servers) await stop();
  await database?.drop();
});

describe('GET /status on the machine’s Redis and Postgres', () => {
  let app: Express;
  let shared: Redis;
  beforeAll(async () => {
    shared = await openFormation(REDIS_URL, webProcess, workerProcess, queueName);
    app = statusApp({ redis: shared });
  });

  it('/status.json → each of our connections attributed to its process and role, beside the plan', async () => {
    const res = await request(app).get('/status.json').expect(200).expect('Content-Type', /json/);
    const report = res.body as StatusReport;
    expect(res.headers['cache-control']).toBe('no-store');

    expect(report.live.redis.clients.available).toBe(true);
    if (!report.live.redis.clients.available) return;
    const mine = report.live.redis.clients.groups
      .filter((g) => g.process === webProcess || g.process === workerProcess)
      .map(({ process, role, kind, count, queue }) => ({ process, role, kind, count, queue }));
    expect(mine).toEqual([
      { process: webProcess, role: 'shared', kind: 'web', count: 1, queue: undefined },
      { process: workerProcess, role: 'blocking', kind: 'worker', count: 1, queue: queueName },
      { process: workerProcess, role: 'shared', kind: 'worker', count: 1, queue: undefined },
    ]);
    expect(blockingName).toMatch(/=:w:/);
    const blocking = report.live.redis.clients.groups.find((g) => g.role === 'blocking' && g.process === workerProcess);
    expect(blocking?.connections[0]?.name).toBe(blockingName);

    // The plan: the seed's sum, 6 + 2 + 2 = 10, ceiling 1 worker dyno.
    expect(report.redis.plan.rows.map((r) => [r.role, r.connections])).toEqual([['web', 6], ['worker', 2], ['reserved', 2]]);
    expect(report.redis.plan).toMatchObject({ total: 10, limit: 10, headroom: 0, maxWorkerDynos: 1 });
    expect(report.plan).toMatchObject({ maxWorkerDynos: 1, limitedBy: 'redis', fits: true });
    expect(report.redis.comparison.map((c) => c.role)).toEqual(['web', 'worker', 'reserved']);

    expect(report.live.redis.info).toMatchObject({ available: true });
    if (report.live.redis.info.available) {
      expect(report.live.redis.info.connectedClients).toBeGreaterThanOrEqual(3);
      expect(report.live.redis.info.rejectedConnections).toEqual(expect.any(Number));
    }
    expect(report.live.redis.maxClients).toMatchObject({ available: true, source: 'config' });

    expect(report.live.postgres.available).toBe(true);
    if (!report.live.postgres.available) return;
    expect(report.live.postgres.database).toBe(database.name);
    const pg = report.live.postgres.groups.find((g) => g.application === `nanoscale:${webProcess}`);
    expect(pg).toMatchObject({ process: webProcess, kind: 'web' });
    expect(pg!.count).toBeGreaterThanOrEqual(1);
    expect(report.autoscaler).toEqual({ available: false, reason: expect.stringMatching(/no autoscaler/) });
  });

  it('/status → the plan and live bars, our processes by name, and no URL', async () => {
    const res = await request(app).get('/status').expect(200).expect('Content-Type', /html/);
    expect(res.text).toContain('aria-label="planned: 6 web, 2 worker, 2 reserved of 10"');
    // The planned bar: web takes 6 of 10 slots, then worker 2, then the reserve 2.
    expect(res.text).toMatch(/<g class="seg seg-web">\s*<title>web: 6<\/title>\s*<rect x="0%" y="0" width="60%"/);
    expect(res.text).toMatch(/<g class="seg seg-worker">\s*<title>worker: 2<\/title>\s*<rect x="60%" y="0" width="20%"/);
    expect(res.text).toMatch(/<g class="seg seg-reserved">\s*<title>reserved: 2<\/title>\s*<rect x="80%" y="0" width="20%"/);
    // The app's CSP (style-src 'self') would drop inline styles: the page has none.
    expect(res.text).not.toMatch(/<style|\sstyle="/);
    expect(res.text).toMatch(/aria-label="live: /);
    expect(res.text).toContain(`<code>${webProcess}</code>`);
    expect(res.text).toContain(`<code>${workerProcess}</code>`);
    expect(res.text).toContain(`(queue <code>${queueName}</code>)`);
    expect(res.text).toContain(`nanoscale:${webProcess}`);
    expect(res.text).toContain('data-slot="autoscaler"');
    expect(res.text).not.toMatch(/redis:\/\/|postgres(ql)?:\/\//);
  });

  it('autoscalerStatus given → current, desired, ceiling and why, last decision, calls, last error, rate limit', async () => {
    const at = Date.UTC(2026, 11, 4, 12, 0, 0);
    const status = {
      processType: 'worker', platform: 'heroku', current: 0, currentAt: at, uncertain: false, desired: 1, rule: 'load',
      reason: 'waiting=3 active=0', decidedAt: at, ceiling: 1, ceilingReason: 'Redis: 10 connections leave room for 1 worker dyno(s)',
      idleSince: null, lastChange: { from: 0, to: 1, at, by: 'web.1/2' }, platformCalls: 4, lastCallAt: at,
      lastError: { message: 'rate limited', status: 429, at, by: 'web.1/1' }, consecutiveFailures: 0, backoffUntil: null, rateLimitRemaining: 4471,
    };
    const withScaler = statusApp({ redis: shared, autoscalerStatus: async () => status });
    const json = (await request(withScaler).get('/status.json').expect(200)).body as StatusReport;
    expect(json.autoscaler).toEqual({ available: true, status });
    const page = (await request(withScaler).get('/status').expect(200)).text;
    expect(page).toContain('<dt>desired</dt><dd>1 (load)</dd>');
    expect(page).toContain('Redis: 10 connections leave room for 1 worker dyno(s)');
    expect(page).toContain('0 → 1 by web.1/2 · 2026-12-04 12:00:00 UTC');
    expect(page).toContain('<dt>platform calls</dt><dd>4');
    expect(page).toContain('rate limited (429)');
    expect(page).toContain('<dt>rate limit remaining</dt><dd>4471</dd>');
    const off = (await request(statusApp({ redis: shared, autoscalerStatus: async () => null })).get('/status').expect(200)).text;
    expect(off).toContain('Off: AUTOSCALER=off');
  });
});

describe('GET /status on a private redis-server (maxclients 10)', () => {
  let local: LocalRedis;
  beforeAll(async () => {
    local = await startRedisServer({ maxClients: 10 });
    servers.push(() => local.stop());
  });

  it('web 1 + worker 2 + two strangers → exact groups; strangers spend the reserve in the live bar', async () => {
    const shared = await openFormation(local.url, 'web.1/1', 'worker.1', 'downloads');
    await ready(rawClient(local.url), rawClient(local.url, 'redis-cli-console'));
    const app = statusApp({ redis: shared, processName: 'web.1/1' });
    const report = (await request(app).get('/status.json').expect(200)).body as StatusReport;
    const clients = report.live.redis.clients;
    if (!clients.available) throw new Error(clients.reason);
    expect(clients.total).toBe(5);
    expect(clients.byKind).toEqual({ web: 1, worker: 2, other: 2 });
    expect(clients.groups.map((g) => `${g.process}/${g.role}=${g.count}`)).toEqual([
      'web.1/1/shared=1',
      'worker.1/blocking=1',
      'worker.1/shared=1',
      'other/unnamed=2',
    ]);
    expect(report.redis.comparison.map((c) => [c.role, c.planned, c.live])).toEqual([['web', 6, 1], ['worker', 2, 2], ['reserved', 2, 2]]);
    expect(report.live.redis.maxClients).toEqual({ available: true, value: 10, source: 'config' });
    expect(report.redis.bars.live).toMatchObject({ available: true, bar: { summary: '1 web, 2 worker, 2 other (reserve in use), 5 free of 10', overBy: 0 } });
    expect(report.warnings).toEqual([]);
  });

  it('a user without +client/+config (NOPERM) → CLIENT LIST reported unavailable, INFO still counts, no password shown', async () => {
    const admin = rawClient(local.url);
    await admin.call('ACL', 'SETUSER', 'limited', 'on', '>s3cret-pw', '~*', '&*', '+@all', '-client', '-config');
    const limited = rawClient(local.url.replace('redis://', 'redis://limited:s3cret-pw@'));
    await ready(limited);
    const app = statusApp({ redis: limited, processName: 'web.1/1' });
    const report = (await request(app).get('/status.json').expect(200)).body as StatusReport;
    expect(report.live.redis.clients).toEqual({ available: false, reason: expect.stringMatching(/^CLIENT LIST: NOPERM/) });
    expect(report.live.redis.maxClients).toEqual({ available: true, value: 10, source: 'info' });
    expect(report.live.redis.info).toMatchObject({ available: true, rejectedConnections: 0 });
    expect(report.redis.bars.live).toMatchObject({ available: true, bar: { segments: expect.arrayContaining([expect.objectContaining({ kind: 'used' })]) } });
    const page = await request(app).get('/status').expect(200);
    expect(page.text).toContain('CLIENT LIST is not available on this Redis');
    expect(page.text).not.toContain('s3cret-pw');
  });
});

describe('GET /status where CLIENT and CONFIG are renamed away', () => {
  let redis: Redis;
  beforeAll(async () => {
    const binary = redisServerBinary();
    if (!binary) throw new Error('redis-server is not on PATH');
    const port = await freePort();
    const child: ChildProcess = spawn(
      binary,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxclients', '10',
        '--rename-command', 'CLIENT', '', '--rename-command', 'CONFIG', ''],
      { stdio: 'ignore' },
    );
    servers.push(() => stopChild(child));
    redis = rawClient(`redis://127.0.0.1:${port}`);
    redis.on('error', () => {});
    await waitFor(async () => (await redis.ping()) === 'PONG', { what: 'the renamed redis-server', timeoutMs: 10_000 });
  });

  it('/status.json → clients and CONFIG unavailable with the server’s reason, maxclients from INFO', async () => {
    const app = statusApp({ redis });
    const report = (await request(app).get('/status.json').expect(200)).body as StatusReport;
    expect(report.live.redis.clients).toEqual({ available: false, reason: expect.stringMatching(/^CLIENT LIST: ERR unknown command/) });
    expect(report.live.redis.maxClients).toEqual({ available: true, value: 10, source: 'info' });
    expect(report.live.redis.info).toMatchObject({ available: true, connectedClients: 1 });
    expect(report.redis.comparison.every((c) => c.live === null)).toBe(true);
  });

  it('/status → 200, says CLIENT LIST is unavailable, still draws the live bar from INFO', async () => {
    const page = await request(statusApp({ redis })).get('/status').expect(200);
    expect(page.text).toContain('CLIENT LIST is not available on this Redis');
    expect(page.text).toContain('ERR unknown command');
    expect(page.text).toContain('aria-label="live: 1 in use, 2 reserved, 7 free of 10"');
  });
});
