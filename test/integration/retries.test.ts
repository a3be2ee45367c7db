// Failures retry with exponential backoff (3 attempts); a retried job sends the
// "ready" email once; after the last attempt the row is failed.
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
    const job = await waitFor(async () => {
      const j = await h.queue.getJob(row.id);
      return j && (await j.getState()) === 'completed' ? j : null;
    }, { timeoutMs: 20_000, what: 'job completed' });
    expect(job.attemptsMade).toBe(2);
    expect(smtp.attempts()).toBe(2);
    expect(smtp.accepted).toEqual(['retry@example.com']);
    const done = await h.db.download.findUniqueOrThrow({ where: { id: row.id } });
    expect(done.status).toBe('ready');
    expect(done.emailedAt).toBeInstanceOf(Date);
    // Rendered once: the second attempt found the file and only sent the email.
    expect(done.attempts).toBe(1);
  });

  it('every attempt fails → 3 attempts with growing delays, then the row is failed', async () => {
    await smtp.close();
    const res = await form.post({ email: 'never@example.com', title: 'Never', pages: '1' }).expect(303);
    const token = res.headers.location!.split('/').pop()!;
    const row = await h.db.download.findFirstOrThrow({ where: { token } });
    const job = await waitFor(async () => {
      const j = await h.queue.getJob(row.id);
      return j && (await j.getState()) === 'failed' ? j : null;
    }, { timeoutMs: 30_000, what: 'job failed' });
    expect(job.attemptsMade).toBe(3);
    // Exponential backoff: 2 s, then 4 s.
    expect(job.finishedOn! - job.processedOn!).toBeLessThan(5_000);
    expect(job.finishedOn! - job.timestamp).toBeGreaterThanOrEqual(6_000);
    const failed = await h.db.download.findUniqueOrThrow({ where: { id: row.id } });
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/ECONNREFUSED|connect/i);
    // The "could not" email could not be sent either: the claim was released, not kept.
    expect(failed.emailedAt).toBeNull();
  });
});
