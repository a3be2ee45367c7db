// Secrets never appear in logs, pages or errors. A full run with a password on every
// service (Redis, Postgres, SMTP), a platform token, and the failures that make
// programs print their configuration (a refused platform call, Redis going away), then
// every byte the processes printed and every page served is searched for each secret.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/local/free-port.js';
import { startMailCatcher, type MailCatcher } from '../../src/local/mail-catcher.js';
import { startRedisServer, type LocalRedis } from '../../src/local/redis-server.js';
import { startFakePlatformApi, type FakePlatformApi } from '../support/fake-platform-api.js';
import { postDownload } from '../support/form.js';
import { startFormation, startProcess, type TestProcess } from '../support/processes.js';
import { createTestDatabase, PG_ADMIN_URL, uniqueName, waitFor, type TestDatabase } from '../support/services.js';

const secret = (label: string) => `${label}${randomBytes(12).toString('hex')}`;
const secrets = {
  redisPassword: secret('redispw'),
  databasePassword: secret('dbpw'),
  smtpPassword: secret('smtppw'),
  herokuApiKey: secret('hrkukey'),
  sessionSecret: secret('sessionsecret').padEnd(40, 'x'),
  adminPassword: secret('adminpw'),
};

let database: TestDatabase;
let role: string;
let mail: MailCatcher;
let redis: LocalRedis;
let platform: FakePlatformApi;
const processes: TestProcess[] = [];

async function admin(sql: string) {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  database = await createTestDatabase();
  role = uniqueName('nanoscale_secret').replace(/-/g, '_');
  await admin(`CREATE ROLE ${role} LOGIN PASSWORD '${secrets.databasePassword}'`);
  await admin(`GRANT ALL ON DATABASE ${database.name} TO ${role}`);
  const c = new pg.Client({ connectionString: database.url });
  await c.connect();
  await c.query(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${role}; GRANT USAGE ON TYPE download_status TO ${role}`);
  await c.end();
  mail = await startMailCatcher();
  redis = await startRedisServer({ maxClients: 20, extraArgs: ['--requirepass', secrets.redisPassword] });
  platform = await startFakePlatformApi({ token: secrets.herokuApiKey, appName: 'nanoscale-secrets' });
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop('SIGKILL')));
  await platform?.close();
  await redis?.stop();
  await mail?.close();
  await database?.drop();
  await admin(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
});

describe('secrets', () => {
  it('a full run with failures → no secret in any log line, page or error', async () => {
    const port = await freePort();
    const dbUrl = new URL(database.url);
    dbUrl.username = role;
    dbUrl.password = secrets.databasePassword;
    const env = {
      NODE_ENV: 'production',
      REDIS_URL: `redis://:${secrets.redisPassword}@127.0.0.1:${redis.port}`,
      DATABASE_URL: dbUrl.toString(),
      SMTP_URL: `smtp://mailer:${secrets.smtpPassword}@127.0.0.1:${mail.port}`,
      HEROKU_API_KEY: secrets.herokuApiKey,
      HEROKU_APP_NAME: 'nanoscale-secrets',
      HEROKU_API_URL: platform.url,
      SESSION_SECRET: secrets.sessionSecret,
      ADMIN_PASSWORD: secrets.adminPassword,
      QUEUE_NAME: uniqueName('secrets'),
      AUTOSCALE_INTERVAL: '1',
      IDLE_TIMEOUT: '1',
      WEB_DYNOS: '1',
      LOG_LEVEL: 'debug',
    };
    // The platform refuses the first calls: the failure is logged.
    platform.failNext(2, 500);
    const { web, worker } = await startFormation(env, port);
    processes.push(web, worker);

    const base = `http://127.0.0.1:${port}`;
    const https = { 'x-forwarded-proto': 'https' };
    const pages: string[] = [];
    const fetchText = async (path: string, headers: Record<string, string> = {}) => {
      const res = await fetch(`${base}${path}`, { headers: { ...https, ...headers }, redirect: 'manual' });
      const text = await res.text();
      pages.push(`${res.status} ${path}\n${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n${text}`);
      return res;
    };
    const formHtml = await (await fetch(`${base}/`, { headers: https })).text();
    pages.push(formHtml);
    const posted = await postDownload(base, { email: 'secret@example.com', title: 'Secrets', pages: '1' }, https);
    expect(posted.status).toBe(303);
    await mail.waitFor((m) => m.to.includes('secret@example.com'), 30_000);
    await waitFor(async () => platform.calls.filter((c) => c.status === 500).length === 2 && platform.calls.some((c) => c.status === 200), {
      timeoutMs: 20_000,
      what: `a platform call that succeeds after two refusals: ${JSON.stringify(platform.calls)}`,
    });
    for (const path of [posted.location!, `${posted.location}/file`, '/status', '/status.json', '/nope', `/downloads/${'A'.repeat(43)}`, '/admin/queues']) {
      await fetchText(path);
    }
    await fetchText('/admin/queues', { authorization: `Basic ${Buffer.from(`admin:wrong`).toString('base64')}` });
    const dashboard = await fetchText('/admin/queues', { authorization: `Basic ${Buffer.from(`admin:${secrets.adminPassword}`).toString('base64')}` });
    expect(dashboard.status).toBe(200);
    // Redis goes away for a moment: connection errors get logged.
    await redis.stop();
    await new Promise((r) => setTimeout(r, 1_500));
    redis = await startRedisServer({ port: redis.port, maxClients: 20, extraArgs: ['--requirepass', secrets.redisPassword] });
    await fetchText('/');
    await new Promise((r) => setTimeout(r, 1_500));
    await Promise.all(processes.map((p) => p.stop('SIGTERM')));
    // A process refused at boot quotes the variables it could not use.
    const refused = startProcess('worker/main.js', { ...env, DYNO: 'worker.2', REDIS_URL: `http://:${secrets.redisPassword}@127.0.0.1:${redis.port}` });
    expect((await refused.exited).code).toBe(1);
    expect(refused.output.join('\n')).toMatch(/REDIS_URL=http:\/\/:\*\*\*@127\.0\.0\.1:\d+\/ is invalid/);

    const everything = [...web.output, ...worker.output, ...refused.output, ...pages, ...mail.messages.map((m) => m.raw.toString())].join('\n');
    expect(everything).toMatch(/autoscaler: worker .*failed/);
    expect(everything).toMatch(/redis: shared connection/);
    for (const [name, value] of Object.entries(secrets)) {
      expect(everything.includes(value), `${name} leaked`).toBe(false);
    }
  }, 120_000);
});
