// `npm start` (dist/local/main.js) with no configuration: it spawns its own Redis,
// an embedded Postgres and a capturing SMTP server, runs web and the local dyno
// manager; the worker starts at zero, the first request brings worker.1 up through
// the autoscaler's Platform API call, the request ends as an email in /dev/mail whose
// link downloads the PDF, and worker.1 leaves after the idle timeout.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/local/free-port.js';
import { startMailCatcher } from '../../src/local/mail-catcher.js';
import { countPdfPages } from '../../src/worker/render-pdf.js';
import { postDownload } from '../support/form.js';
import { ROOT, startProcess, type TestProcess } from '../support/processes.js';
import { createTestDatabase, REDIS_URL, uniqueName, waitFor } from '../support/services.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

/** The scripts (dist/…/main.js) the stack's direct children run. */
function childScripts(pid: number): string[] {
  let children: number[];
  try {
    children = execFileSync('pgrep', ['-P', String(pid)]).toString().trim().split('\n').map(Number);
  } catch {
    return []; // pgrep exits 1 when there is none
  }
  return children.flatMap((child) => {
    try {
      const argv = readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0');
      return argv.filter((a) => a.endsWith('main.js')).map((a) => path.relative(ROOT, a));
    } catch {
      return []; // gone meanwhile
    }
  });
}

/** Resolves with about when the first line matching `pattern` at or after output line `from` arrived. */
async function lineAt(p: TestProcess, pattern: RegExp, options: { from: number; timeoutMs: number }): Promise<number> {
  let seen = options.from;
  await waitFor(
    async () => {
      const found = p.output.slice(seen).some((l) => pattern.test(l));
      seen = Math.max(seen, p.output.length - 1);
      return found;
    },
    { timeoutMs: options.timeoutMs, intervalMs: 20, what: `a line matching ${pattern}` },
  ).catch((err: Error) => {
    throw new Error(`${err.message}; output:\n${p.output.slice(-30).join('\n')}`);
  });
  return Date.now();
}

describe('npm start', () => {
  it('without redis-server on PATH → says how to install it and exits 1', async () => {
    const p = startProcess('local/main.js', { PATH: '/nonexistent' });
    const exit = await p.exited;
    expect(exit.code).toBe(1);
    expect(p.output.join('\n')).toContain('redis-server was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install redis-server`');
  });

  it('no configuration → worker at zero; a request brings worker.1 up and ends as an email whose link downloads the PDF; after the idle timeout worker.1 exits 0; SIGTERM stops it all', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'nanoscale-local-'));
    // As root the embedded Postgres runs as the postgres user, who must reach the folder.
    await chmod(dataDir, 0o755);
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const port = await freePort();
    const idleTimeoutMs = 2_000;
    const stack: TestProcess = startProcess('local/main.js', { LOCAL_DATA_DIR: dataDir, PORT: String(port), IDLE_TIMEOUT: '2', AUTOSCALE_INTERVAL: '1' });
    // SIGTERM, so a failed test still stops the stack's own Redis, Postgres and workers (stop() escalates to SIGKILL after 30 s).
    cleanups.push(() => stack.stop('SIGTERM'));
    await stack.waitForLine(new RegExp(`nanoscale is running: http://localhost:${port}`), 60_000);
    expect(stack.output.join('\n')).toMatch(/local\s+\| dyno manager: Platform API \(formation\) for nanoscale-local on http:\/\/127\.0\.0\.1:\d+; worker starts at 0/);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, { what: 'web up' });

    // At zero: web runs, no worker process, and none starts while nothing is queued
    // (the hourly cleanup schedule's first run is an hour away, not at boot).
    const cycles = () => stack.output.filter((l) => /dyno manager: worker \d+ -> \d+/.test(l));
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(childScripts(stack.child.pid!)).toEqual(['dist/web/main.js']);
    expect(cycles()).toEqual([]);
    const from = stack.output.length;

    const posted = await postDownload(`http://127.0.0.1:${port}`, { email: 'local@example.com', title: 'Local stack', pages: '2' });
    expect(posted.status).toBe(303);
    await lineAt(stack, /^local\s+\| dyno manager: worker 0 -> 1, starting worker\.1$/, { from, timeoutMs: 15_000 });
    await lineAt(stack, /autoscaler: worker 0 -> 1 \(waiting=\d+ active=\d+\) \[local\]$/, { from, timeoutMs: 5_000 });
    await lineAt(stack, /^worker\.1\s+\| info\s+worker: ready/, { from, timeoutMs: 20_000 });
    expect(childScripts(stack.child.pid!).sort()).toEqual(['dist/web/main.js', 'dist/worker/main.js']);

    const mailedAt = lineAt(stack, /^worker\.1\s+\| info\s+mail: "ready" sent for /, { from, timeoutMs: 30_000 });
    const scaledDown = lineAt(stack, /^local\s+\| dyno manager: worker 1 -> 0, stopping worker\.1$/, { from, timeoutMs: 60_000 });
    const messagePath = await waitFor(async () => {
      const list = await (await fetch(`http://127.0.0.1:${port}/dev/mail`)).text();
      return /href="(\/dev\/mail\/[A-Za-z0-9_-]+)">Your download is ready/.exec(list)?.[1];
    }, { timeoutMs: 30_000, what: 'mail in /dev/mail' });
    const message = await (await fetch(`http://127.0.0.1:${port}${messagePath}`)).text();
    const link = /http:\/\/127\.0\.0\.1:\d+\/downloads\/[A-Za-z0-9_-]{43}/.exec(message)?.[0];
    expect(link).toBeDefined();
    const file = await fetch(`${link}/file`);
    expect(file.status).toBe(200);
    const pdf = Buffer.from(await file.arrayBuffer());
    expect(pdf.subarray(0, 4).toString()).toBe('%PDF');
    expect(countPdfPages(pdf)).toBe(2);

    // Idle: scaled to zero no sooner than IDLE_TIMEOUT after the job, and worker.1 exits cleanly.
    const [jobDone, down] = await Promise.all([mailedAt, scaledDown]);
    expect(down - jobDone).toBeGreaterThanOrEqual(idleTimeoutMs - 200);
    await lineAt(stack, /^worker\.1\s+\| info\s+shutdown: SIGTERM received/, { from, timeoutMs: 5_000 });
    await lineAt(stack, /^local\s+\| dyno manager: worker\.1 exited \(code 0\)$/, { from, timeoutMs: 30_000 });
    await lineAt(stack, /autoscaler: worker 1 -> 0 \(waiting=0 active=0\) \[local\]$/, { from, timeoutMs: 5_000 });
    expect(childScripts(stack.child.pid!)).toEqual(['dist/web/main.js']);
    expect(cycles()).toHaveLength(2);

    const exit = await stack.stop('SIGTERM');
    expect(exit.code).toBe(0);
    expect(stack.output.join('\n')).toMatch(/local\s+\| stopped/);
    const redisLine = stack.output.find((l) => l.includes('private redis-server on redis://127.0.0.1:'))!;
    const redisPort = Number(/127\.0\.0\.1:(\d+)/.exec(redisLine)![1]);
    await expect(fetch(`http://127.0.0.1:${redisPort}`)).rejects.toThrow();
  }, 180_000);

  it('AUTOSCALER=off (services given) → no dyno manager; worker.1 runs from the start as a plain process; SIGTERM stops both', async () => {
    const database = await createTestDatabase({ migrated: false });
    cleanups.push(() => database.drop());
    const mail = await startMailCatcher();
    cleanups.push(() => mail.close());
    const port = await freePort();
    const stack = startProcess('local/main.js', {
      AUTOSCALER: 'off',
      PORT: String(port),
      REDIS_URL,
      DATABASE_URL: database.url,
      SMTP_URL: mail.url,
      QUEUE_NAME: uniqueName('local-off'),
    });
    // SIGTERM, so a failed test still stops the stack's own Redis, Postgres and workers (stop() escalates to SIGKILL after 30 s).
    cleanups.push(() => stack.stop('SIGTERM'));
    await stack.waitForLine(/^worker\.1\s+\| info\s+worker: ready/, 60_000);
    await stack.waitForLine(/^web\.1\/\d\s+\| info\s+web: listening/, 30_000);
    const output = stack.output.join('\n');
    expect(output).toMatch(/local\s+\| autoscaler: off \(AUTOSCALER=off\); worker\.1 runs as a plain process/);
    expect(output).not.toContain('dyno manager');
    expect(childScripts(stack.child.pid!).sort()).toEqual(['dist/web/main.js', 'dist/worker/main.js']);

    const exit = await stack.stop('SIGTERM');
    expect(exit.code).toBe(0);
    expect(stack.output.join('\n')).toMatch(/^worker\.1\s+\| info\s+shutdown: done$/m);
    expect(stack.output.join('\n')).toMatch(/local\s+\| stopped/);
  }, 120_000);
});
