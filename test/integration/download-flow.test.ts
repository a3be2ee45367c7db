// The whole flow over HTTP with a real worker: submit → job → PDF in Postgres →
// the captured email's link → the status page → the PDF itself.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countPdfPages } from '../../src/worker/render-pdf.js';
import { formAgent } from '../support/form.js';
import { startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/services.js';

let h: Harness;
let form: Awaited<ReturnType<typeof formAgent>>;
beforeAll(async () => {
  h = await startHarness();
  form = await formAgent(h.app);
  h.startWorker();
});
afterAll(async () => h?.close());

function linkIn(text: string): string {
  const match = /https?:\/\/[^\s"<>]+\/downloads\/[A-Za-z0-9_-]{43}/.exec(text);
  if (!match) throw new Error(`no download link in: ${text}`);
  return match[0];
}

describe('download flow', () => {
  it('POST /downloads → 303 to the status page, a queued row and a job whose payload is only the id', async () => {
    await waitFor(async () => (await h.queue.getWorkers()).length === 1, { what: 'the worker registered' });
    await h.queue.pause();
    try {
      const res = await form.post({ email: 'flow@example.com', title: 'Paused', pages: '1' }).expect(303);
      expect(res.headers.location).toMatch(/^\/downloads\/[A-Za-z0-9_-]{43}$/);
      const row = await h.db.download.findFirstOrThrow({ where: { email: 'flow@example.com' } });
      expect(row.status).toBe('queued');
      expect(row.token.length).toBeGreaterThanOrEqual(43); // 256 bits, base64url
      expect(row.enqueuedAt).toBeInstanceOf(Date);
      const job = await h.queue.getJob(row.id);
      expect(job?.id).toBe(row.id);
      expect(job?.data).toEqual({ downloadId: row.id });
      expect(job?.opts.attempts).toBe(3);
      const page = await request(h.app).get(res.headers.location!).expect(200);
      expect(page.text).toContain('Queued');
      expect(page.text).toMatch(/<meta http-equiv="refresh" content="2">/);
    } finally {
      await h.queue.resume();
    }
  });

  it('worker renders, stores and emails once → the link in the email serves the PDF with the requested pages', async () => {
    const res = await form.agent
      .post('/downloads')
      .set('Host', 'nanoscale.test:8080')
      .type('form')
      .send({ email: 'reader@example.com', title: 'Q1 < Q2 & "notes"', pages: '7', _csrf: form.token })
      .expect(303);
    const token = res.headers.location!.split('/').pop()!;

    const mail = await h.mail.waitFor((m) => m.to.includes('reader@example.com'), 30_000);
    expect(mail.subject).toBe('Your download is ready');
    const link = linkIn(mail.text);
    expect(link).toBe(`http://nanoscale.test:8080/downloads/${token}`);
    expect(mail.html).toContain('Q1 &lt; Q2 &amp; &#34;notes&#34;');
    expect(mail.html).not.toContain('Q1 < Q2');

    const path = new URL(link).pathname;
    const page = await request(h.app).get(path).expect(200);
    expect(page.text).toContain('Ready');
    expect(page.text).not.toMatch(/http-equiv="refresh"/);
    expect(page.text).toContain(`href="${path}/file"`);
    expect(page.text).toContain('Q1 &lt; Q2 &amp; &#34;notes&#34;');

    const file = await request(h.app).get(`${path}/file`).buffer(true).parse((r, cb) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => cb(null, Buffer.concat(chunks)));
    }).expect(200);
    expect(file.headers['content-type']).toBe('application/pdf');
    expect(file.headers['content-disposition']).toMatch(/^attachment; filename="Q1 Q2 & notes\.pdf"/);
    const pdf = file.body as Buffer;
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    expect(Number(file.headers['content-length'])).toBe(pdf.length);
    expect(countPdfPages(pdf)).toBe(7);

    const row = await h.db.download.findFirstOrThrow({ where: { token } });
    expect(row).toMatchObject({ status: 'ready', progress: 100, attempts: 1 });
    expect(row.emailedAt).toBeInstanceOf(Date);
  });

  it('the same job run again (a retry, the reconciler) → no second "ready" email', async () => {
    await form.post({ email: 'once@example.com', title: 'Once', pages: '1' }).expect(303);
    await h.mail.waitFor((m) => m.to.includes('once@example.com'));
    const row = await h.db.download.findFirstOrThrow({ where: { email: 'once@example.com' } });
    await waitFor(async () => (await h.queue.getJobState(row.id)) === 'completed');
    await h.queue.remove(row.id);
    await h.queue.add('render', { downloadId: row.id }, { jobId: row.id });
    await waitFor(async () => (await h.queue.getJobState(row.id)) === 'completed', { what: 'second run' });
    expect(h.mail.messages.filter((m) => m.to.includes('once@example.com'))).toHaveLength(1);
  });

  it('a download that cannot be made → row failed and one "could not" email', async () => {
    // Expire it before the worker gets there (UnrecoverableError: no retries).
    await h.queue.pause();
    const res = await form.post({ email: 'late@example.com', title: 'Late', pages: '1' }).expect(303);
    const token = res.headers.location!.split('/').pop()!;
    const row = await h.db.download.findFirstOrThrow({ where: { token } });
    await h.db.download.update({ where: { id: row.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    await h.queue.resume();
    const mail = await h.mail.waitFor((m) => m.to.includes('late@example.com'));
    expect(mail.subject).toBe('Your download could not be made');
    const failed = await h.db.download.findUniqueOrThrow({ where: { id: row.id } });
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/expired/);
    await request(h.app).get(`/downloads/${token}`).expect(410);
  });

  it('GET /downloads/<unknown token> → 404 page, no stack trace', async () => {
    const res = await request(h.app).get(`/downloads/${'A'.repeat(43)}`).expect(404);
    expect(res.text).toContain('There is no download at this address');
    expect(res.text).not.toMatch(/at \w+ \(|node_modules/);
    await request(h.app).get('/downloads/not-a-token/file').expect(404);
  });

  it('GET /downloads/:token/file before it is ready → 409 with a message', async () => {
    await h.queue.pause();
    try {
      const res = await form.post({ email: 'early@example.com', title: 'Early', pages: '1' }).expect(303);
      const file = await request(h.app).get(`${res.headers.location}/file`).expect(409);
      expect(file.text).toContain('not ready yet');
    } finally {
      await h.queue.resume();
    }
  });
});
