// The one error handler: every error becomes a status and a plain message, as a page
// or as JSON (for `.json` routes and clients that ask for it). Nothing a person
// sees ever includes a stack trace; 5xx errors are logged with theirs.
import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from '../log.js';
import { HttpError, notFound } from './http-error.js';

interface BodyParserError {
  type?: string;
  status?: number;
  expose?: boolean;
}

const BODY_ERRORS: Record<string, [number, string]> = {
  'entity.too.large': [413, 'That request is too large. Shorten the title and try again.'],
  'entity.parse.failed': [400, 'That request could not be read.'],
  'encoding.unsupported': [415, 'That request uses an encoding this site does not accept.'],
  'charset.unsupported': [415, 'That request uses a character set this site does not accept.'],
  'parameters.too.many': [413, 'That request has too many fields.'],
};

/** Connection-level failures of Postgres (through pg / Prisma's adapter): the database is unavailable, not broken. */
const DATABASE_DOWN = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|Connection terminated|timeout exceeded when trying to connect|the database system is (starting up|shutting down)|too many clients|remaining connection slots|terminating connection due to administrator command|Can't reach database|P1001|P1017|P2024/i;

export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { message, code } = e as { message?: string; code?: string };
    if (DATABASE_DOWN.test(`${code ?? ''} ${message ?? ''}`)) return true;
  }
  return false;
}

export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const e = err as (BodyParserError & { message?: string; code?: string }) | null;
  const bodyError = e?.type ? BODY_ERRORS[e.type] : undefined;
  if (bodyError) {
    const [status, message] = bodyError;
    return new HttpError(status, message, `http:${e!.type}`);
  }
  if (e?.status === 400 && e.message?.startsWith('Failed to decode param')) {
    return new HttpError(400, 'That address could not be read. Check the link and try again.', 'http:bad-url');
  }
  // Errors from libraries (http-errors: csrf-csrf, body-parser) that are safe to show.
  if (e && typeof e.status === 'number' && e.status >= 400 && e.status < 500 && e.expose !== false && e.message) {
    return new HttpError(e.status, e.message, e.code ?? `http:${e.status}`);
  }
  if (isDatabaseUnavailable(err)) {
    return new HttpError(503, 'The database is unavailable right now. Nothing was lost; please try again in a minute.', 'http:database-unavailable');
  }
  return new HttpError(500, 'Something went wrong on our side. Please try again in a moment.', 'http:internal');
}

export const notFoundHandler: RequestHandler = (_req, _res, next) => next(notFound());

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const httpError = toHttpError(err);
    if (httpError.status === 503) res.set('Retry-After', '30');
    if (httpError.status >= 500) log.error({ err, path: req.path }, `http: ${req.method} ${req.path} failed: ${httpError.message}`);
    if (res.headersSent) return res.destroy();
    res.status(httpError.status);
    const wantsJson = req.path.endsWith('.json') || (req.accepts(['html', 'json']) === 'json');
    if (wantsJson) {
      res.json({ error: { status: httpError.status, code: httpError.code, message: httpError.message } });
    } else {
      res.render('error', { status: httpError.status, message: httpError.message });
    }
  };
}
