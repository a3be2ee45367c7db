// `npm start` (dist/local/main.js) with no configuration: it spawns its own Redis,
// an embedded Postgres and a capturing SMTP server, runs the Procfile's processes,
// and a request ends as an email in /dev/mail whose link downloads the PDF.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/local/free-port.js';
import { countPdfPages } from '../../src/worker/render-pdf.js';
import { postDownload } from '../support/form.js';
import { startProcess, type TestProcess } from '../support/processes.js';
import { waitFor } from '../support/services.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

describe('npm start', () => {
  it('without redis-server on PATH → says how to install it and exits 1', async () => {
    const p = startProcess('local/main.js', { PATH: '/nonexistent' });
    const exit = await p.exited;
    expect(exit.code).toBe(1);
    expect(p.output.join('\n')).toContain('redis-server was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install redis-server`');
  });

  it('no configuration → the whole system runs; a request ends as an email whose link downloads the PDF; SIGTERM stops it all', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'nanoscale-local-'));
    // As root the embedded Postgres runs as the postgres user, who must reach the folder.
    await chmod(dataDir, 0o755);
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const port = await freePort();
    const stack: TestProcess = startProcess('local/main.js', { LOCAL_DATA_DIR: dataDir, PORT: String(port) });
    cleanups.push(() => stack.stop('SIGKILL'));
    await stack.waitForLine(new RegExp(`nanoscale is running: http://localhost:${port}`), 60_000);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, { what: 'web up' });

    const posted = await postDownload(`http://127.0.0.1:${port}`, { email: 'local@example.com', title: 'Local stack', pages: '2' });
    expect(posted.status).toBe(303);

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

    const exit = await stack.stop('SIGTERM');
    expect(exit.code).toBe(0);
    expect(stack.output.join('\n')).toMatch(/local\s+\| stopped/);
    const redisLine = stack.output.find((l) => l.includes('private redis-server on redis://127.0.0.1:'))!;
    const redisPort = Number(/127\.0\.0\.1:(\d+)/.exec(redisLine)![1]);
    await expect(fetch(`http://127.0.0.1:${redisPort}`)).rejects.toThrow();
  }, 120_000);
});
