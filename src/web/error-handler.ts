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

export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const bodyError = (err as BodyParserError | null)?.type;
  if (bodyError && BODY_ERRORS[bodyError]) {
    const [status, message] = BODY_ERRORS[bodyError];
    return new HttpError(status, message, `http:${bodyError}`);
  }
  return new HttpError(500, 'Something went wrong on our side. Please try again in a moment.', 'http:internal');
}

export const notFoundHandler: RequestHandler = (_req, _res, next) => next(notFound());

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const httpError = toHttpError(err);
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
