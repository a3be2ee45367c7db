// Failures retry with exponential backoff (3 attempts); a retried job sends the
// "ready" email once; a download that cannot be made is failed after the last
// attempt (or after MAX_RENDERS renders) with one "could not" email; one that was made
// stays ready when only its email fails.
import { SMTPServer } from 'smtp-server';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/local/free-port.js';
import { formAgent } from '../support/form.js';
import { startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/services.js';

/** An SMTP server that refuses the first `refusals` messages, then accepts. */
async function refusingSmtp(refusals: number) {
  const port = await freePort();
  let seen = 0;
  const accepted: string[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      stream.resume();
      stream.on('end', () => {
        seen++;
        if (seen <= refusals) return callback(Object.assign(new Error('451 try again later'), { responseCode: 451 }));
        accepted.push(session.envelope.rcptTo.map((r) => r.address).join(','));
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return { url: `smtp://127.0.0.1:${port}`, accepted, attempts: () => seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

let h: Harness;

/** The job once it reaches `state`. */
function jobIn(id: string, state: 'completed' | 'failed', timeoutMs: number) {
  return waitFor(async () => {
    const job = await h.queue.getJob(id);
    return job && (await job.getState()) === state ? job : null;
  }, { timeoutMs, what: `job ${state}` });
}
let form: Awaited<ReturnType<typeof formAgent>>;
let smtp: Awaited<ReturnType<typeof refusingSmtp>>;
beforeAll(async () => {
  h = await startHarness();
  form = await formAgent(h.app);
  smtp = await refusingSmtp(1);
  h.startWorker({ smtpUrl: smtp.url });
});
afterAll(async () => {
  await h?.close();
  await smtp?.close();
});

describe('retries', () => {
  it('SMTP refuses the first attempt → the job retries after a backoff and one email arrives', async () => {
    const res = await form.post({ email: 'retry@example.com', title: 'Retry', pages: '2' }).expect(303);
    const token = res.headers.location!.split('/').pop()!;
    const row = await h.db.download.findFirstOrThrow({ where: { token } });
    const job = await jobIn(row.id, 'completed', 20_000);
    expect(job.attemptsMade).toBe(2);
    expect(smtp.attempts()).toBe(2);
    expect(smtp.accepted).toEqual(['retry@example.com']);
    const done = await h.db.download.findUniqueOrThrow({ where: { id: row.id } });
    expect(done.status).toBe('ready');
    expect(done.emailedAt).toBeInstanceOf(Date);
    // Rendered once: the second attempt found the file and only sent the email.
    expect(done.attempts).toBe(1);
  });

  it('storing the file fails every time → 3 attempts with growing delays, then the row is failed and one "could not" email arrives', async () => {
    // A real Postgres error on every attempt: a trigger refuses the file, as a full disk would.
    await h.db.$executeRawUnsafe(`CREATE FUNCTION refuse_files() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$ LANGUAGE plpgsql`);
    await h.db.$executeRawUnsafe(`CREATE TRIGGER refuse_files BEFORE INSERT ON download_files FOR EACH ROW EXECUTE FUNCTION refuse_files()`);
    try {
      const res = await form.post({ email: 'never@example.com', title: 'Never', pages: '1' }).expect(303);
      const token = res.headers.location!.split('/').pop()!;
      const row = await h.db.download.findFirstOrThrow({ where: { token } });
      const job = await jobIn(row.id, 'failed', 30_000);
      expect(job.attemptsMade).toBe(3);
      // Exponential backoff: 2 s, then 4 s.
      expect(job.finishedOn! - job.processedOn!).toBeLessThan(5_000);
      expect(job.finishedOn! - job.timestamp).toBeGreaterThanOrEqual(6_000);
      const failed = await h.db.download.findUniqueOrThrow({ where: { id: row.id } });
      expect(failed).toMatchObject({ status: 'failed', attempts: 3 });
      expect(failed.error).toMatch(/No space left on device/);
      expect(failed.emailedAt).toBeInstanceOf(Date);
      expect(smtp.accepted.filter((to) => to === 'never@example.com')).toHaveLength(1);
    } finally {
      await h.db.$executeRawUnsafe('DROP TRIGGER refuse_files ON download_files');
      await h.db.$executeRawUnsafe('DROP FUNCTION refuse_files');
    }
  });

  it('a download rendered MAX_RENDERS times already (a job that keeps dying) → given up: failed, one "could not" email', async () => {
    const res = await form.post({ email: 'poison@example.com', title: 'Poison', pages: '1' }).expect(303);
    const token = res.headers.location!.split('/').pop()!;
    const row = await h.db.download.findFirstOrThrow({ where: { token } });
    // The first job must be finished (a locked, active job cannot be removed).
    await jobIn(row.id, 'completed', 20_000);
    // As if its worker had died mid-render six times.
    await h.db.download.update({ where: { id: row.id }, data: { status: 'processing', attempts: 6, emailedAt: null } });
    expect(await h.queue.remove(row.id)).toBe(1);
    await h.queue.add('render', { downloadId: row.id }, { jobId: row.id });
    await waitFor(async () => (await h.db.download.findUniqueOrThrow({ where: { id: row.id } })).status === 'failed', { what: 'given up' });
    expect((await h.db.download.findUniqueOrThrow({ where: { id: row.id } })).error).toMatch(/gave up after 6 renders/);
    await waitFor(async () => smtp.accepted.filter((to) => to === 'poison@example.com').length === 2, { what: 'the could-not email after the ready one' });
  });

  it('SMTP refuses every attempt → the job fails after 3 attempts, but the download stays ready (it was made) and no email is recorded', async () => {
    await smtp.close();
    const res = await form.post({ email: 'nomail@example.com', title: 'No mail', pages: '1' }).expect(303);
    const token = res.headers.location!.split('/').pop()!;
    const row = await h.db.download.findFirstOrThrow({ where: { token } });
    await jobIn(row.id, 'failed', 30_000);
    const made = await h.db.download.findUniqueOrThrow({ where: { id: row.id } });
    expect(made).toMatchObject({ status: 'ready', attempts: 1, emailedAt: null });
    // The page still offers the file; the reconciler tries the email again later.
    await request(h.app).get(`/downloads/${token}/file`).expect(200);
  });
});
