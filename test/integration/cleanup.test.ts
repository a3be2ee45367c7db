// Expired downloads: 410 for their pages, and the scheduled cleanup job deletes
// their files on the worker.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scheduleCleanup } from '../../src/queue/downloads.js';
import { formAgent } from '../support/form.js';
import { startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/services.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
  h.startWorker();
});
afterAll(async () => h?.close());

describe('expiry and cleanup', () => {
  it('an expired download → 410 on its page and its file; the scheduled cleanup deletes the file and keeps the row', async () => {
    const form = await formAgent(h.app);
    const res = await form.post({ email: 'old@example.com', title: 'Old', pages: '1' }).expect(303);
    const token = res.headers.location!.split('/').pop()!;
    await h.mail.waitFor((m) => m.to.includes('old@example.com'));
    const row = await h.db.download.findFirstOrThrow({ where: { token } });
    expect(await h.db.downloadFile.count({ where: { downloadId: row.id } })).toBe(1);

    await h.db.download.update({ where: { id: row.id }, data: { expiresAt: new Date(Date.now() - 1_000) } });
    const page = await request(h.app).get(`/downloads/${token}`).expect(410);
    expect(page.text).toContain('This download has expired');
    await request(h.app).get(`/downloads/${token}/file`).expect(410);

    await scheduleCleanup(h.queue, 300);
    await waitFor(async () => (await h.db.downloadFile.count({ where: { downloadId: row.id } })) === 0, { timeoutMs: 10_000, what: 'file deleted' });
    expect(await h.db.download.count({ where: { id: row.id } })).toBe(1);
    const schedulers = await h.queue.getJobSchedulers();
    expect(schedulers.map((s) => s.key)).toEqual(['cleanup']);
  });
});
