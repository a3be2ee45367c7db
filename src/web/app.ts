// The Express app as a value: `createApp(deps)` wires routes to the dependencies it
// is given and listens nowhere (server.ts does), so tests drive it with supertest
// against real Redis, Postgres and SMTP.
import express, { type Express } from 'express';
import type { Redis } from 'ioredis';
import type { BudgetPlan } from '../budget/plan.js';
import path from 'node:path';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../log.js';
import type { DownloadsQueue } from '../queue/downloads.js';
import { VIEWS_DIR } from '../paths.js';
import { errorHandler, notFoundHandler } from './error-handler.js';
import { downloadsRouter } from './routes/downloads.js';
import { adminRouter } from './routes/admin.js';
import { devMailRouter } from './routes/dev-mail.js';
import { statusRouter } from './routes/status.js';
import { rateLimits } from './rate-limits.js';
import { csrfProtection, httpsOnly, securityHeaders } from './security.js';

export interface AppDeps {
  db: PrismaClient;
  queue: DownloadsQueue;
  /** The process's one shared Redis client (rate limits; never a new connection). */
  redis: Redis;
  log: Logger;
  config: {
    isProduction: boolean;
    maxPages: number;
    downloadTtlMs: number;
    sessionSecret: string;
    rateLimits: { perIpPer10Minutes: number; perEmailPerHour: number };
    /** Unset: no /admin pages. */
    adminPassword?: string;
    /** Redis key prefix for rate-limit counters (default the queue's). */
    keyPrefix?: string;
    /** Folder of captured mail (`npm start` only): mounts /dev/mail. */
    devMailDir?: string;
  };
  /** Called after each successful enqueue (the autoscaler's first trigger); must not block. */
  onEnqueued?: () => void;
  /** Mounts /status and /status.json: the budget next to the live connections. */
  status?: { plan: BudgetPlan; processName: string; autoscalerStatus?: () => Promise<object | null> };
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
  const security = { isProduction: deps.config.isProduction, sessionSecret: deps.config.sessionSecret };
  app.use(httpsOnly(security));
  const headers = securityHeaders(security);
  const csrf = csrfProtection(security);
  const limits = rateLimits({ redis: deps.redis, keyPrefix: deps.config.keyPrefix ?? `nanoscale:${deps.queue.name}`, ...deps.config.rateLimits });
  app.get('/app.css', (_req, res) => {
    res.sendFile(path.join(VIEWS_DIR, 'app.css'), { maxAge: '1h' });
  });
  // The captured mail's HTML carries inline styles: its page is development-only and
  // gets the default headers without our strict style policy.
  if (deps.config.devMailDir && !deps.config.isProduction) {
    app.use('/dev/mail', devMailRouter(deps.config.devMailDir));
  }
  // bull-board's UI runs inline scripts: it sits behind the password, outside our CSP.
  if (deps.config.adminPassword) {
    app.use('/admin', adminRouter({ queue: deps.queue, password: deps.config.adminPassword }));
  }
  app.use(headers, csrf.cookies);
  if (deps.status) {
    app.get(['/status', '/status.json'], limits.status);
    app.use(statusRouter({ redis: deps.redis, db: deps.db, ...deps.status }));
  }
  app.use(downloadsRouter(deps, { csrf, limits }));
  app.use(notFoundHandler);
  app.use(errorHandler(deps.log));
  return app;
}
