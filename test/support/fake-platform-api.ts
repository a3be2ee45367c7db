// An HTTP fake of the Heroku Platform API's formation endpoints for one app, for tests
// that drive the real actuator (heroku-client) over a real socket. Lifecycle:
// 1. createFakePlatformApp(state) is the Express app, a value; startFakePlatformApi()
//    listens on a free loopback port and returns the handle tests use;
// 2. every request is recorded (method, path, body, time, status) before it is judged;
// 3. it checks the token (Bearer, or Basic with the token as password, as the real API
//    accepts), the Accept version, the app and the process type, and answers with the
//    real JSON shapes, error bodies ({id, message}) and a RateLimit-Remaining header
//    that goes down by one per call (429 rate_limit once empty, like the real pool);
// 4. failNext(n, …) and slowNext(n, ms) make the next n calls answer 429/5xx or late.
//    A slow answer applies its change at once and answers late, like a platform that
//    did the work but whose answer the client gave up on.
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';

export interface PlatformCall {
  method: string;
  path: string;
  body: unknown;
  /** When the request arrived (ms since the epoch). */
  at: number;
  /** The status answered; undefined while the answer is pending. */
  status?: number;
}

export interface FormationRow {
  id: string;
  type: string;
  quantity: number;
  size: string;
  command: string;
  created_at: string;
  updated_at: string;
}

interface Injected {
  remaining: number;
  status?: number;
  retryAfterSeconds?: number;
  delayMs?: number;
}

export interface FakePlatformState {
  token: string;
  app: { id: string; name: string };
  formation: Map<string, FormationRow>;
  calls: PlatformCall[];
  rateLimitRemaining: number;
  failures: Injected[];
  delays: Injected[];
}

export interface FakePlatformOptions {
  /** Default `fake-token`. */
  token?: string;
  /** Default `nanoscale-test`. */
  appName?: string;
  /** Process types and their quantities. Default { web: 1, worker: 0 }. */
  formation?: Record<string, number>;
  /** Default 4500 (a full Heroku token pool). */
  rateLimitRemaining?: number;
}

const API_CONTENT_TYPE = 'application/json; charset=utf-8';

function apiError(res: Response, status: number, id: string, message: string, extra: Record<string, unknown> = {}): void {
  res.status(status).type(API_CONTENT_TYPE).json({ id, message, ...extra });
}

function authorized(req: Request, token: string): boolean {
  const value = req.get('authorization') ?? '';
  if (value === `Bearer ${token}`) return true;
  const basic = /^Basic (.+)$/.exec(value);
  if (!basic?.[1]) return false;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  return decoded.slice(decoded.indexOf(':') + 1) === token;
}

export function createFakePlatformState(options: FakePlatformOptions = {}): FakePlatformState {
  const created = new Date().toISOString();
  const formation = new Map<string, FormationRow>();
  for (const [type, quantity] of Object.entries(options.formation ?? { web: 1, worker: 0 })) {
    formation.set(type, { id: randomUUID(), type, quantity, size: 'standard-1X', command: `npm run ${type}`, created_at: created, updated_at: created });
  }
  return {
    token: options.token ?? 'fake-token',
    app: { id: randomUUID(), name: options.appName ?? 'nanoscale-test' },
    formation,
    calls: [],
    rateLimitRemaining: options.rateLimitRemaining ?? 4_500,
    failures: [],
    delays: [],
  };
}

/** The Express app: the formation subset of the Platform API, over `state`. */
export function createFakePlatformApp(state: FakePlatformState): Express {
  const app = express();
  app.set('x-powered-by', false);
  const show = (row: FormationRow) => ({
    app: { ...state.app },
    command: row.command,
    created_at: row.created_at,
    dyno_size: { id: null, name: row.size },
    id: row.id,
    quantity: row.quantity,
    size: row.size,
    type: row.type,
    updated_at: row.updated_at,
  });
  const find = (typeOrId: string) => state.formation.get(typeOrId) ?? [...state.formation.values()].find((row) => row.id === typeOrId);
  const validQuantity = (q: unknown): q is number => typeof q === 'number' && Number.isSafeInteger(q) && q >= 0 && q <= 100;
  const apply = (row: FormationRow, quantity: number) => {
    row.quantity = quantity;
    row.updated_at = new Date().toISOString();
  };

  // Record first, so even refused calls are counted.
  app.use((req, res, next) => {
    const call: PlatformCall = { method: req.method, path: req.path, body: undefined, at: Date.now() };
    state.calls.push(call);
    res.locals.call = call;
    res.on('finish', () => (call.status = res.statusCode));
    next();
  });
  app.use(express.json({ type: () => true }));
  app.use((req, res, next) => {
    if (Number(req.get('content-length') ?? 0) > 0) (res.locals.call as PlatformCall).body = req.body;
    if (!authorized(req, state.token)) return apiError(res, 401, 'unauthorized', 'Invalid credentials provided.');
    if (!(req.get('accept') ?? '').includes('application/vnd.heroku+json; version=3')) {
      return apiError(res, 406, 'not_acceptable', 'Set Accept: application/vnd.heroku+json; version=3 and try again.');
    }
    // An empty pool refuses the call; otherwise the call spends one token.
    res.set('Request-Id', randomUUID());
    if (state.rateLimitRemaining > 0) state.rateLimitRemaining -= 1;
    else {
      res.set('RateLimit-Remaining', '0');
      return apiError(res, 429, 'rate_limit', 'Your account reached the API rate limit.');
    }
    res.set('RateLimit-Remaining', String(state.rateLimitRemaining));
    const failure = state.failures[0];
    if (failure) {
      if (--failure.remaining <= 0) state.failures.shift();
      if (failure.retryAfterSeconds !== undefined) res.set('Retry-After', String(failure.retryAfterSeconds));
      if (failure.status === 429) return apiError(res, 429, 'rate_limit', 'Your account reached the API rate limit.');
      return apiError(res, failure.status ?? 500, 'internal_server_error', 'Internal server error.');
    }
    const delay = state.delays[0];
    if (delay) {
      if (--delay.remaining <= 0) state.delays.shift();
      // Apply now (run the handler with a held `res.json`), answer after the delay.
      const json = res.json.bind(res);
      res.json = (body: unknown) => {
        setTimeout(() => {
          if (!res.writableEnded && !res.destroyed) json(body);
        }, delay.delayMs ?? 0);
        return res;
      };
    }
    next();
  });

  app.get('/apps/:app', (req, res) => {
    if (req.params.app !== state.app.name && req.params.app !== state.app.id) return apiError(res, 404, 'not_found', "Couldn't find that app.", { resource: 'app' });
    res.type(API_CONTENT_TYPE).json({ ...state.app });
  });
  app.use('/apps/:app', (req, res, next) => {
    if (req.params.app !== state.app.name && req.params.app !== state.app.id) return apiError(res, 404, 'not_found', "Couldn't find that app.", { resource: 'app' });
    next();
  });
  app.get('/apps/:app/formation', (_req, res) => {
    res.type(API_CONTENT_TYPE).json([...state.formation.values()].map(show));
  });
  app.get('/apps/:app/formation/:type', (req, res) => {
    const row = find(req.params.type);
    if (!row) return apiError(res, 404, 'not_found', "Couldn't find that formation.", { resource: 'formation' });
    res.type(API_CONTENT_TYPE).json(show(row));
  });
  app.patch('/apps/:app/formation/:type', (req, res) => {
    const row = find(req.params.type);
    if (!row) return apiError(res, 404, 'not_found', "Couldn't find that formation.", { resource: 'formation' });
    const body = (req.body ?? {}) as { quantity?: unknown; size?: unknown };
    if (body.quantity !== undefined && !validQuantity(body.quantity)) return apiError(res, 422, 'invalid_params', 'Invalid quantity: must be a whole number from 0 to 100.');
    if (body.quantity !== undefined) apply(row, body.quantity as number);
    if (typeof body.size === 'string') row.size = body.size;
    res.type(API_CONTENT_TYPE).json(show(row));
  });
  app.patch('/apps/:app/formation', (req, res) => {
    const updates = (req.body as { updates?: unknown } | undefined)?.updates;
    if (!Array.isArray(updates)) return apiError(res, 422, 'invalid_params', 'Missing updates: expected {"updates": [{"type": …, "quantity": …}]}.');
    const rows: Array<[FormationRow, { quantity?: unknown; size?: unknown }]> = [];
    for (const update of updates as Array<{ type?: unknown; quantity?: unknown; size?: unknown }>) {
      const row = typeof update.type === 'string' ? find(update.type) : undefined;
      if (!row) return apiError(res, 404, 'not_found', "Couldn't find that formation.", { resource: 'formation' });
      if (update.quantity !== undefined && !validQuantity(update.quantity)) return apiError(res, 422, 'invalid_params', 'Invalid quantity: must be a whole number from 0 to 100.');
      rows.push([row, update]);
    }
    for (const [row, update] of rows) {
      if (update.quantity !== undefined) apply(row, update.quantity as number);
      if (typeof update.size === 'string') row.size = update.size;
    }
    res.type(API_CONTENT_TYPE).json(rows.map(([row]) => show(row)));
  });
  app.use((_req, res) => apiError(res, 404, 'not_found', 'The requested API endpoint was not found.'));
  app.use((err: Error & { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    if (err.status && err.status < 500) return apiError(res, err.status, 'bad_request', err.message);
    apiError(res, 500, 'internal_server_error', err.message);
  });
  return app;
}

export interface FakePlatformApi {
  /** The base URL to give heroku-client as `host` (HEROKU_API_URL). */
  url: string;
  token: string;
  appName: string;
  state: FakePlatformState;
  calls: PlatformCall[];
  /** Calls of one method (and optionally one path suffix, e.g. `/formation/worker`). */
  callsOf(method: string, pathEnd?: string): PlatformCall[];
  quantity(type?: string): number;
  /** Scale as if from the dashboard, without a recorded call. */
  setQuantity(type: string, quantity: number): void;
  /** The next `count` authenticated calls answer `status` (429, 500, 503 …). */
  failNext(count: number, status: number, options?: { retryAfterSeconds?: number }): void;
  /** The next `count` authenticated calls are applied at once but answered after `delayMs`. */
  slowNext(count: number, delayMs: number): void;
  /** Forget injected failures and delays. */
  heal(): void;
  close(): Promise<void>;
}

export async function startFakePlatformApi(options: FakePlatformOptions = {}): Promise<FakePlatformApi> {
  const state = createFakePlatformState(options);
  const app = createFakePlatformApp(state);
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const row = (type: string) => {
    const found = state.formation.get(type);
    if (!found) throw new Error(`the fake platform has no process type ${type}`);
    return found;
  };
  return {
    url: `http://127.0.0.1:${port}`,
    token: state.token,
    appName: state.app.name,
    state,
    calls: state.calls,
    callsOf: (method, pathEnd) => state.calls.filter((c) => c.method === method && (pathEnd === undefined || c.path.endsWith(pathEnd))),
    quantity: (type = 'worker') => row(type).quantity,
    setQuantity: (type, quantity) => {
      row(type).quantity = quantity;
    },
    failNext: (count, status, failOptions = {}) => {
      state.failures.push({ remaining: count, status, ...failOptions });
    },
    slowNext: (count, delayMs) => {
      state.delays.push({ remaining: count, delayMs });
    },
    heal: () => {
      state.failures.length = 0;
      state.delays.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
