// The Procfile's web and worker processes, run from dist/ as on a dyno: their Redis
// connection counts against CLIENT LIST, the flow across processes, and how each
// stops on SIGTERM.
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/local/free-port.js';
import { startMailCatcher, type MailCatcher } from '../../src/local/mail-catcher.js';
import { csrfTokenIn, postDownload } from '../support/form.js';
import { startProcess, type TestProcess } from '../support/processes.js';
import { clientList, createTestDatabase, REDIS_URL, testDb, uniqueName, waitFor, type TestDatabase } from '../support/services.js';

let database: TestDatabase;
let mail: MailCatcher;
let env: Record<string, string>;
let port: number;
const running: TestProcess[] = [];
const tag = uniqueName('t').replace('-', '');

function start(script: string, extra: Record<string, string>) {
  const p = startProcess(script, { ...env, ...extra });
  running.push(p);
  return p;
}

beforeAll(async () => {
  database = await createTestDatabase();
  mail = await startMailCatcher();
  port = await freePort();
  env = { REDIS_URL, DATABASE_URL: database.url, SMTP_URL: mail.url, QUEUE_NAME: uniqueName('proc'), PORT: String(port), MAX_PAGES: '1000' };
});
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')));
  await mail?.close();
  await database?.drop();
});

const post = (fields: Record<string, string>) => postDownload(`http://127.0.0.1:${port}`, fields);

describe('web and worker processes', () => {
  let web: TestProcess;
  let worker: TestProcess;

  it('web: a primary and WEB_CONCURRENCY=3 workers → exactly one Redis connection each, named after process and role', async () => {
    web = start('web/main.js', { DYNO: `web${tag}.1`, WEB_CONCURRENCY: '3' });
    await waitFor(async () => web.output.filter((l) => l.includes('web: listening')).length === 3, { what: '3 listening workers' });
    const mine = (await clientList()).filter((c) => c.name.startsWith(`nanoscale:web${tag}.1/`));
    expect(mine).toHaveLength(3);
    for (const c of mine) expect(c.name).toMatch(new RegExp(`^nanoscale:web${tag}\\.1/\\d+:shared$`));
  });

  it('worker: WORKER_CONCURRENCY=2 → exactly two connections (shared + BullMQ blocking)', async () => {
    worker = start('worker/main.js', { DYNO: `worker${tag}.1`, WORKER_CONCURRENCY: '2' });
    await worker.waitForLine(/worker: ready/);
    const names = await waitFor(async () => {
      const n = (await clientList()).map((c) => c.name).filter((name) => name.includes(`nanoscale:worker${tag}.1:`));
      return n.length >= 2 ? n : null;
    });
    expect(names.sort()).toEqual([`bull:${Buffer.from(env.QUEUE_NAME!).toString('base64')}:w:nanoscale:worker${tag}.1:blocking`, `nanoscale:worker${tag}.1:shared`].sort());
  });

  it('a request to web → the worker process renders it → the email arrives', async () => {
    const res = await post({ email: 'procs@example.com', title: 'Across processes', pages: '2' });
    expect(res.status).toBe(303);
    const message = await mail.waitFor((m) => m.to.includes('procs@example.com'));
    expect(message.text).toContain(`http://127.0.0.1:${port}${res.location}`);
  });

  it('a cluster worker dies → the primary replaces it and the pool is 3 again', async () => {
    const primaryPid = web.child.pid!;
    const children = execFileSync('pgrep', ['-P', String(primaryPid)]).toString().trim().split('\n').map(Number);
    expect(children).toHaveLength(3);
    process.kill(children[0]!, 'SIGKILL');
    await web.waitForLine(/cluster: worker \d+ died \(SIGKILL\); starting another/);
    await waitFor(async () => web.output.filter((l) => l.includes('web: listening')).length === 4, { what: 'replacement listening' });
    await waitFor(async () => (await clientList()).filter((c) => c.name.startsWith(`nanoscale:web${tag}.1/`)).length === 3, { what: '3 connections again' });
  });

  it('worker SIGTERM during a job → the job finishes, the process exits 0 within 25 s', async () => {
    const res = await post({ email: 'drain@example.com', title: 'Long one', pages: '400' });
    const db = testDb(database.url);
    try {
      const token = res.location!.split('/').pop()!;
      await waitFor(async () => (await db.download.findFirst({ where: { token } }))?.status === 'processing', { what: 'processing' });
      const exit = await worker.stop('SIGTERM');
      expect(exit.code).toBe(0);
      expect(exit.ms).toBeLessThan(25_000);
      expect(worker.output.join('\n')).toMatch(/worker: stopped \(drained\)/);
      const row = await db.download.findFirstOrThrow({ where: { token } });
      expect(row.status).toBe('ready');
      expect((await clientList()).filter((c) => c.name.includes(`nanoscale:worker${tag}.1:`))).toHaveLength(0);
    } finally {
      await db.$disconnect();
    }
  });

  it('web SIGTERM with a request in flight → it is answered, then the dyno exits 0 within 25 s', async () => {
    const form = await fetch(`http://127.0.0.1:${port}/`);
    const cookie = form.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const body = `email=inflight%40example.com&title=In+flight&pages=1&_csrf=${encodeURIComponent(csrfTokenIn(await form.text()))}`;
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    let response = '';
    socket.on('data', (d) => (response += d.toString()));
    socket.write(`POST /downloads HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/x-www-form-urlencoded\r\nCookie: ${cookie}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, 10)}`);
    await new Promise((r) => setTimeout(r, 200));
    const stopped = web.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    socket.write(body.slice(10));
    await new Promise((r) => socket.once('close', r));
    expect(response).toMatch(/^HTTP\/1\.1 303/);
    const exit = await stopped;
    expect(exit.code).toBe(0);
    expect(exit.ms).toBeLessThan(25_000);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it('a bad config value → the process refuses to start, naming the variable and the fix', async () => {
    const p = start('worker/main.js', { DYNO: `worker${tag}.2`, WORKER_CONCURRENCY: 'lots' });
    const exit = await p.exited;
    expect(exit.code).toBe(1);
    expect(p.output.join('\n')).toMatch(/WORKER_CONCURRENCY="lots" is invalid .*: use the number of jobs one worker process runs at once/);
    expect((await clientList()).filter((c) => c.name.includes(`worker${tag}.2`))).toHaveLength(0);
  });
});
