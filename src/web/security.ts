// What makes the app safe to put on the internet, from well-kept libraries:
// - helmet: security headers with a strict Content-Security-Policy;
// - HTTPS only in production (behind Heroku's router, which sets X-Forwarded-Proto);
// - csrf-csrf: every state-changing form carries a token bound to an anonymous
//   per-browser id cookie (double-submit, HMAC-signed with SESSION_SECRET).
import { randomBytes } from 'node:crypto';
import cookieParser from 'cookie-parser';
import { doubleCsrf } from 'csrf-csrf';
import type { Request, RequestHandler } from 'express';
import helmet from 'helmet';

const BROWSER_ID_COOKIE = 'nanoscale.bid';
const CSRF_COOKIE = 'nanoscale.csrf';

export interface SecurityOptions {
  isProduction: boolean;
  sessionSecret: string;
}

export function securityHeaders(options: SecurityOptions): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        ...(options.isProduction ? { upgradeInsecureRequests: [] } : {}),
      },
    },
    // HSTS only where HTTPS is certain; on localhost it would pin the browser to https.
    strictTransportSecurity: options.isProduction ? { maxAge: 15_552_000, includeSubDomains: true } : false,
  });
}

/** Production requests that came in over plain HTTP go to HTTPS (GET/HEAD) or are refused. */
export function httpsOnly(options: SecurityOptions): RequestHandler {
  return (req, res, next) => {
    if (!options.isProduction || req.secure) return next();
    if (req.method === 'GET' || req.method === 'HEAD') return res.redirect(301, `https://${req.get('host')}${req.originalUrl}`);
    res.status(403).type('text').send('Use https.');
  };
}

export function csrfProtection(options: SecurityOptions) {
  const cookieOptions = { sameSite: 'lax' as const, secure: options.isProduction, httpOnly: true, path: '/' };
  const browserId = (req: Request): string => (req.cookies as Record<string, string | undefined>)[BROWSER_ID_COOKIE] ?? '';
  const csrf = doubleCsrf({
    getSecret: () => options.sessionSecret,
    getSessionIdentifier: browserId,
    cookieName: options.isProduction ? `__Host-${CSRF_COOKIE}` : CSRF_COOKIE,
    cookieOptions,
    getCsrfTokenFromRequest: (req) => (req.body as Record<string, unknown> | undefined)?._csrf as string | undefined,
    errorConfig: {
      statusCode: 403,
      code: 'http:csrf',
      message: 'This form has expired or came from another site. Go back, reload the page and send it again.',
    },
  });

  /** Gives the browser an anonymous id (once) and the view a fresh token in `res.locals.csrfToken`. */
  const issue: RequestHandler = (req, res, next) => {
    const cookies = req.cookies as Record<string, string | undefined>;
    if (!cookies[BROWSER_ID_COOKIE]) {
      cookies[BROWSER_ID_COOKIE] = randomBytes(18).toString('base64url');
      res.cookie(BROWSER_ID_COOKIE, cookies[BROWSER_ID_COOKIE], cookieOptions);
    }
    // A cookie that no longer validates (a rotated SESSION_SECRET) is replaced, not refused.
    res.locals.csrfToken = csrf.generateCsrfToken(req, res, { overwrite: false });
    next();
  };
  return { cookies: cookieParser(), issue, verify: csrf.doubleCsrfProtection };
}
