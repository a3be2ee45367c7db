// Postgres goes away (a proxy between the app and the server drops every connection):
// pages answer 503 with a plain message, jobs fail and retry, nothing crashes for
// good, and service resumes by itself when the database is back.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formAgent } from '../support/form.js';
import { startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/services.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

let h: Harness;
let proxy: TcpProxy;
beforeAll(async () => {
  h = await startHarness({
    databaseUrl: async (url) => {
      const u = new URL(url);
      proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port || 5432) });
      u.hostname = '127.0.0.1';
      u.port = String(proxy.port);
      return u.toString();
    },
  });
  h.startWorker();
});
afterAll(async () => {
  await proxy?.restore().catch(() => {});
  await h?.close();
  await proxy?.close();
});

describe('Postgres unavailable', () => {
  it('pages → 503 with a plain message; a job in flight retries; everything resumes when it is back', async () => {
    const form = await formAgent(h.app);
    const first = await form.post({ email: 'before@example.com', title: 'Before', pages: '1' }).expect(303);
    await h.mail.waitFor((m) => m.to.includes('before@example.com'));

    await h.queue.pause();
    const queued = await form.post({ email: 'during@example.com', title: 'During', pages: '1' }).expect(303);
    await proxy.cut();

    const page = await request(h.app).get(first.headers.location!).expect(503);
    expect(page.text).toContain('The database is unavailable right now');
    expect(page.headers['retry-after']).toBe('30');
    expect(page.text).not.toMatch(/ECONNREFUSED|at \w+ \(/);
    const json = await request(h.app).get(first.headers.location!).set('Accept', 'application/json').expect(503);
    expect(json.body.error.code).toBe('http:database-unavailable');
    const post = await form.post({ email: 'refused@example.com', title: 'Refused', pages: '1' });
    expect(post.status).toBe(503);
    expect(post.text).toContain('Nothing was lost');

    // The queued job runs while the database is away: it fails and is retried with backoff.
    await h.queue.resume();
    const token = queued.headers.location!.split('/').pop()!;
    await waitFor(async () => {
      const jobs = await h.queue.getJobs(['delayed', 'failed']);
      return jobs.some((j) => j.attemptsMade >= 1);
    }, { timeoutMs: 15_000, what: 'a failed attempt' });

    await proxy.restore();
    await waitFor(async () => (await request(h.app).get(first.headers.location!)).status === 200, { timeoutMs: 15_000, what: 'pages back' });
    await h.mail.waitFor((m) => m.to.includes('during@example.com'), 20_000);
    const row = await h.db.download.findFirstOrThrow({ where: { token } });
    expect(row.status).toBe('ready');
    await form.post({ email: 'after@example.com', title: 'After', pages: '1' }).expect(303);
    await h.mail.waitFor((m) => m.to.includes('after@example.com'));
    expect(h.mail.messages.filter((m) => m.to.includes('during@example.com'))).toHaveLength(1);
  });
});
