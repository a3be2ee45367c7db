// The Express app as a value: `createApp(deps)` wires routes to the dependencies it
// is given and listens nowhere (server.ts does), so tests drive it with supertest
// against real Redis, Postgres and SMTP.
import express, { type Express } from 'express';
import path from 'node:path';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../log.js';
import type { DownloadsQueue } from '../queue/downloads.js';
import { VIEWS_DIR } from '../paths.js';
import { errorHandler, notFoundHandler } from './error-handler.js';
import { downloadsRouter } from './routes/downloads.js';
import { devMailRouter } from './routes/dev-mail.js';

export interface AppDeps {
  db: PrismaClient;
  queue: DownloadsQueue;
  log: Logger;
  config: {
    isProduction: boolean;
    maxPages: number;
    downloadTtlMs: number;
    /** Folder of captured mail (`npm start` only): mounts /dev/mail. */
    devMailDir?: string;
  };
  now?: () => Date;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.set('view engine', 'ejs');
  app.set('views', VIEWS_DIR);
  app.set('x-powered-by', false);
  // Heroku's router is the one proxy in front of the dyno: trust its X-Forwarded-* headers.
  app.set('trust proxy', 1);
  app.locals.maxPages = deps.config.maxPages;

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/app.css', (_req, res) => {
    res.sendFile(path.join(VIEWS_DIR, 'app.css'), { maxAge: '1h' });
  });
  app.use(downloadsRouter(deps));
  if (deps.config.devMailDir && !deps.config.isProduction) {
    app.use('/dev/mail', devMailRouter(deps.config.devMailDir));
  }
  app.use(notFoundHandler);
  app.use(errorHandler(deps.log));
  return app;
}
