// The password-protected admin pages: the BullMQ dashboard (bull-board) on the web
// process's existing Queue object, so it costs no connection. Basic auth with
// ADMIN_PASSWORD (user `admin`, constant-time comparison by express-basic-auth);
// without ADMIN_PASSWORD the pages do not exist (404).
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Router } from 'express';
import basicAuth from 'express-basic-auth';
import type { DownloadsQueue } from '../../queue/downloads.js';

export function adminRouter(options: { queue: DownloadsQueue; password: string; basePath?: string }): Router {
  const basePath = options.basePath ?? '/admin';
  const router = Router();
  router.use(
    basicAuth({
      users: { admin: options.password },
      challenge: true,
      realm: 'nanoscale admin',
      unauthorizedResponse: () => 'Sign in as admin with ADMIN_PASSWORD to see this page.',
    }),
  );
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  const board = new ExpressAdapter();
  board.setBasePath(`${basePath}/queues`);
  createBullBoard({ queues: [new BullMQAdapter(options.queue, { readOnlyMode: false })], serverAdapter: board });
  router.get('/', (_req, res) => res.redirect(302, `${basePath}/queues`));
  router.use('/queues', board.getRouter());
  return router;
}
