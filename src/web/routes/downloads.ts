// The person-facing routes: the form, the request, the status page and the file.
import express, { Router, type RequestHandler } from 'express';
import { createDownload, findDownloadByToken } from '../../db/downloads.js';
import { enqueueDownload } from '../../queue/downloads.js';
import type { AppDeps } from '../app.js';
import { HttpError, notFound } from '../http-error.js';
import { validateDownloadForm, type DownloadForm } from '../validation.js';

/** A form post is a few hundred bytes; anything past this is not a person typing. */
const BODY_LIMIT = '8kb';
const REFRESH_SECONDS = 2;

const expired = () => new HttpError(410, 'This download has expired. Ask for it again from the form.', 'http:expired');

export interface DownloadsMiddleware {
  csrf: { issue: RequestHandler; verify: RequestHandler };
  limits: { perIp: RequestHandler; perEmail: RequestHandler };
}

export function downloadsRouter(deps: AppDeps, { csrf, limits }: DownloadsMiddleware): Router {
  const { db, queue, log, config } = deps;
  const now = deps.now ?? (() => new Date());
  const router = Router();

  router.get('/', csrf.issue, (_req, res) => {
    res.render('form', { values: { pages: 3 }, errors: {} });
  });

  router.post(
    '/downloads',
    (req, _res, next) => {
      if (!req.is('application/x-www-form-urlencoded')) {
        return next(new HttpError(415, 'Send the form as application/x-www-form-urlencoded, as a browser does.', 'http:unsupported-media-type'));
      }
      next();
    },
    limits.perIp,
    express.urlencoded({ extended: false, limit: BODY_LIMIT, parameterLimit: 20 }),
    csrf.verify,
    (req, res, next) => {
      const result = validateDownloadForm(req.body, config.maxPages);
      if (result.ok) {
        res.locals.form = result.value;
        return next();
      }
      csrf.issue(req, res, () => res.status(422).render('form', { values: req.body ?? {}, errors: result.errors }));
    },
    limits.perEmail,
    async (req, res) => {
      const form = res.locals.form as DownloadForm;
      const origin = `${req.protocol}://${req.get('host')}`;
      const download = await createDownload(db, { ...form, origin }, { now: now(), ttlMs: config.downloadTtlMs });
      try {
        await enqueueDownload(queue, download.id);
        deps.onEnqueued?.();
        await db.download.update({ where: { id: download.id }, data: { enqueuedAt: now() } });
      } catch (err) {
        // Accepted all the same: the row stays `queued` and the reconciler enqueues it.
        log.warn({ err, downloadId: download.id }, `enqueue: ${download.id} left for the reconciler: ${(err as Error).message}`);
      }
      res.redirect(303, `/downloads/${download.token}`);
    },
  );

  router.all('/downloads', (_req, res, next) => {
    res.set('Allow', 'POST');
    next(new HttpError(405, 'Downloads are requested with the form on the home page.', 'http:method-not-allowed'));
  });

  router.get('/downloads/:token', async (req, res) => {
    const download = await findDownloadByToken(db, req.params.token);
    if (!download) throw notFound('There is no download at this address. Check the link in your email.');
    if (download.expiresAt <= now()) throw expired();
    const done = download.status === 'ready' || download.status === 'failed';
    res.set('Cache-Control', 'no-store');
    res.render('status', { download, refreshSeconds: done ? null : REFRESH_SECONDS });
  });

  router.get('/downloads/:token/file', async (req, res) => {
    const download = await findDownloadByToken(db, req.params.token);
    if (!download) throw notFound('There is no download at this address. Check the link in your email.');
    if (download.expiresAt <= now()) throw expired();
    const file = download.status === 'ready' ? await db.downloadFile.findUnique({ where: { downloadId: download.id } }) : null;
    if (!file) throw new HttpError(409, 'This download is not ready yet. Its page refreshes until it is.', 'http:not-ready');
    res.set({
      'Content-Type': file.contentType,
      'Content-Length': String(file.byteSize),
      'Content-Disposition': contentDisposition(download.title),
      'Cache-Control': 'private, no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    res.end(Buffer.from(file.bytes));
  });

  return router;
}

/** `attachment` with an ASCII fallback and the UTF-8 name (RFC 6266 / 5987). */
export function contentDisposition(title: string): string {
  const base = title.replace(/[\\/:*?"<>|\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 80) || 'download';
  const ascii = base.replace(/[^\x20-\x7e]/g, '_').replace(/["\\%]/g, '_');
  return `attachment; filename="${ascii}.pdf"; filename*=UTF-8''${encodeURIComponent(`${base}.pdf`)}`;
}
