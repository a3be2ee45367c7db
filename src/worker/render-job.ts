// What the worker does with one job, as in the seed: `Model.find(id)`, the heavy
// task, then the email. The row is the truth and every step is safe to repeat:
// 1. load the row (gone → UnrecoverableError: retrying cannot help);
// 2. unless already rendered: mark `processing`, render the PDF reporting progress,
//    store the bytes and mark `ready` in one transaction;
// 3. claim the "ready" email with a conditional update of `emailed_at`, then send;
//    a retried job finds it claimed and never sends a second one;
// 4. on the last failed attempt of a download that could not be made: mark it
//    `failed` and send the "could not" email once. A download that was made stays
//    `ready` when only its email fails: the reconciler tries the email again later.
// A row rendered MAX_RENDERS times without success is given up (the reconciler may
// re-enqueue a job that died, but never forever).
import { UnrecoverableError, type Job } from 'bullmq';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../log.js';
import { downloadLink } from '../db/downloads.js';
import type { Mailer } from '../mail/mailer.js';
import { CLEANUP_JOB, type RenderJobData } from '../queue/downloads.js';
import { deleteExpiredFiles } from './cleanup-job.js';
import { renderPdf } from './render-pdf.js';

/** Renders of one download, across jobs and re-enqueues, before it is given up. */
export const MAX_RENDERS = 6;

export interface RenderJobDeps {
  db: PrismaClient;
  mailer: Mailer;
  log: Logger;
  now?: () => Date;
  /** Minimum time between progress writes (default 300 ms). */
  progressIntervalMs?: number;
}

export function createRenderProcessor(deps: RenderJobDeps) {
  const now = deps.now ?? (() => new Date());
  const { db, mailer, log } = deps;

  async function claimAndSend(id: string, send: () => Promise<void>): Promise<boolean> {
    const claim = await db.download.updateMany({ where: { id, emailedAt: null }, data: { emailedAt: now() } });
    if (claim.count === 0) return false;
    try {
      await send();
      return true;
    } catch (err) {
      // Not sent: release the claim so the retry sends it.
      await db.download.update({ where: { id }, data: { emailedAt: null } });
      throw err;
    }
  }

  async function render(job: Job<RenderJobData>, id: string, title: string, pages: number) {
    await db.download.update({
      where: { id },
      data: { status: 'processing', startedAt: now(), attempts: { increment: 1 }, progress: 0, error: null },
    });
    let lastWrite = 0;
    const interval = deps.progressIntervalMs ?? 300;
    const pdf = await renderPdf({
      title,
      pages,
      onProgress: async (percent) => {
        if (percent < 100 && Date.now() - lastWrite < interval) return;
        lastWrite = Date.now();
        await Promise.all([job.updateProgress(percent), db.download.update({ where: { id }, data: { progress: percent } })]);
      },
    });
    const file = { contentType: 'application/pdf', byteSize: pdf.length, bytes: new Uint8Array(pdf.buffer as ArrayBuffer, pdf.byteOffset, pdf.length) };
    await db.$transaction([
      db.downloadFile.upsert({ where: { downloadId: id }, create: { downloadId: id, ...file }, update: file }),
      db.download.update({ where: { id }, data: { status: 'ready', progress: 100, readyAt: now() } }),
    ]);
    return pdf.length;
  }

  return async function processRenderJob(job: Job<RenderJobData>): Promise<void> {
    if (job.name === CLEANUP_JOB) {
      const deleted = await deleteExpiredFiles(db, now());
      if (deleted > 0) log.info(`cleanup: deleted ${deleted} expired file(s)`);
      return;
    }
    const id = job.data.downloadId;
    const row = await db.download.findUnique({ where: { id } });
    if (!row) throw new UnrecoverableError(`download ${id} does not exist`);
    if (row.status === 'failed') return;
    const link = downloadLink(row);
    let made = row.status === 'ready';
    try {
      if (!made) {
        if (row.expiresAt <= now()) throw new UnrecoverableError(`download ${id} expired before it was made`);
        if (row.attempts >= MAX_RENDERS) throw new UnrecoverableError(`download ${id} gave up after ${row.attempts} renders`);
        const started = Date.now();
        const bytes = await render(job, id, row.title, row.pages);
        made = true;
        log.info({ downloadId: id, pages: row.pages, bytes, ms: Date.now() - started }, `render: ${id} ready (${row.pages} pages)`);
      }
      if (await claimAndSend(id, () => mailer.sendReady(row, link))) {
        log.info({ downloadId: id }, `mail: "ready" sent for ${id}`);
      }
    } catch (err) {
      const lastAttempt = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (lastAttempt && made) {
        log.error({ downloadId: id }, `mail: "ready" for ${id} not sent after ${job.attemptsMade + 1} attempts; the reconciler tries again later`);
      } else if (lastAttempt) {
        const message = err instanceof Error ? err.message : String(err);
        await db.download.update({ where: { id }, data: { status: 'failed', failedAt: now(), error: message.slice(0, 500) } });
        if (await claimAndSend(id, () => mailer.sendFailed(row, link))) {
          log.warn({ downloadId: id }, `mail: "failed" sent for ${id}`);
        }
      }
      throw err;
    }
  };
}
