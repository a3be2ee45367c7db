// The formation subset of the Heroku Platform API over a small in-memory store, for
// `npm start`'s dyno manager and the tests' fake platform (one implementation, so the
// two cannot drift apart). Lifecycle:
// 1. createFormationStore() holds the app, the token, the formation rows and the
//    rate-limit pool; createFormationApi(store, options) is the Express app, a value;
// 2. each request's body is read, then `onRequest` sees it (the fake records calls
//    there), before any check;
// 3. the token (Bearer, or Basic with the token as password, as heroku-client sends),
//    the Accept version and the rate-limit pool are checked like the real API, with
//    its error bodies ({id, message}) and a RateLimit-Remaining header on every answer
//    that passed the token check;
// 4. `admitted` middleware runs next (the fake injects failures and delays there);
// 5. GET/PATCH /apps/:app/formation[/:type] answer with the real JSON shapes; a change
//    of quantity calls `onChange(type, quantity)` (the dyno manager starts and stops
//    processes there).
import { randomUUID } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response } from 'express';

export interface FormationRow {
  id: string;
  type: string;
  quantity: number;
  size: string;
  command: string;
  created_at: string;
  updated_at: string;
}

export interface FormationStore {
  token: string;
  app: { id: string; name: string };
  formation: Map<string, FormationRow>;
  /** Calls left in the pool; at 0 every call answers 429 rate_limit. */
  rateLimitRemaining: number;
  /** When set, the pool refills like Heroku's (tokens per minute, up to `max`); unset, it only drains. */
  refill?: { perMinute: number; max: number; at: number; fraction: number };
}

export interface FormationStoreOptions {
  token: string;
  appName: string;
  /** Process types and their quantities, e.g. { web: 1, worker: 0 }. */
  formation: Record<string, number>;
  /** The command each row reports. Default `npm run <type>`. */
  commands?: Record<string, string>;
  /** Default 4500 (a full Heroku token pool). */
  rateLimitRemaining?: number;
  /** Tokens added back per minute, up to the starting pool; Heroku adds about 75. Default 0 (the pool only drains). */
  refillPerMinute?: number;
}

export interface FormationApiOptions {
  /** Called once a quantity has changed (not for a PATCH that leaves it as it was). */
  onChange?: (type: string, quantity: number) => void;
  /** Process types that cannot be scaled here, with the reason: a PATCH to another quantity answers 422. */
  fixedTypes?: Record<string, string>;
  /** Every request, after its body is read (parsed or not) and before any check. */
  onRequest?: (req: Request, res: Response) => void;
  /** Runs after the token, Accept and rate-limit checks, before the endpoints. */
  admitted?: RequestHandler;
}

export const API_CONTENT_TYPE = 'application/json; charset=utf-8';
export const API_ACCEPT = 'application/vnd.heroku+json; version=3';
/** Largest quantity the API accepts for one process type. */
export const MAX_QUANTITY = 100;

export function apiError(res: Response, status: number, id: string, message: string, extra: Record<string, unknown> = {}): void {
  res.status(status).type(API_CONTENT_TYPE).json({ id, message, ...extra });
}

/** `Bearer <token>`, or Basic auth whose password is the token (heroku-client's default). */
export function authorized(req: Request, token: string): boolean {
  const value = req.get('authorization') ?? '';
  if (value === `Bearer ${token}`) return true;
  const basic = /^Basic (.+)$/.exec(value);
  if (!basic?.[1]) return false;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  return decoded.slice(decoded.indexOf(':') + 1) === token;
}

export function createFormationStore(options: FormationStoreOptions): FormationStore {
  const created = new Date().toISOString();
  const formation = new Map<string, FormationRow>();
  for (const [type, quantity] of Object.entries(options.formation)) {
    const command = options.commands?.[type] ?? `npm run ${type}`;
    formation.set(type, { id: randomUUID(), type, quantity, size: 'standard-1X', command, created_at: created, updated_at: created });
  }
  const rateLimitRemaining = options.rateLimitRemaining ?? 4_500;
  return {
    token: options.token,
    app: { id: randomUUID(), name: options.appName },
    formation,
    rateLimitRemaining,
    ...(options.refillPerMinute ? { refill: { perMinute: options.refillPerMinute, max: rateLimitRemaining, at: Date.now(), fraction: 0 } } : {}),
  };
}

function refill(store: FormationStore, now = Date.now()): void {
  const r = store.refill;
  if (!r) return;
  const earned = ((now - r.at) / 60_000) * r.perMinute + r.fraction;
  r.at = now;
  const whole = Math.floor(earned);
  r.fraction = earned - whole;
  store.rateLimitRemaining = Math.min(r.max, store.rateLimitRemaining + whole);
}

/** The formation endpoints of one app, over `store`. */
export function createFormationApi(store: FormationStore, options: FormationApiOptions = {}): Express {
  const app = express();
  app.set('x-powered-by', false);
  const show = (row: FormationRow) => ({
    app: { ...store.app },
    command: row.command,
    created_at: row.created_at,
    dyno_size: { id: null, name: row.size },
    id: row.id,
    quantity: row.quantity,
    size: row.size,
    type: row.type,
    updated_at: row.updated_at,
  });
  const find = (typeOrId: string) => store.formation.get(typeOrId) ?? [...store.formation.values()].find((row) => row.id === typeOrId);
  const validQuantity = (q: unknown): q is number => typeof q === 'number' && Number.isSafeInteger(q) && q >= 0 && q <= MAX_QUANTITY;
  const invalidQuantity = (res: Response) => apiError(res, 422, 'invalid_params', `Invalid quantity: must be a whole number from 0 to ${MAX_QUANTITY}.`);
  /** Why `row` cannot go to `quantity` here, or undefined. */
  const refusal = (row: FormationRow, quantity: unknown) =>
    quantity !== undefined && quantity !== row.quantity ? options.fixedTypes?.[row.type] : undefined;
  const changes: Array<[string, number]> = [];
  const apply = (row: FormationRow, quantity: number) => {
    if (row.quantity !== quantity) changes.push([row.type, quantity]);
    row.quantity = quantity;
    row.updated_at = new Date().toISOString();
  };
  // Hooks run after the store is consistent, so one that throws cannot leave half a batch.
  const notify = () => {
    for (const [type, quantity] of changes.splice(0)) options.onChange?.(type, quantity);
  };

  const json = express.json({ type: () => true });
  app.use((req, res, next) => {
    json(req, res, (err?: unknown) => {
      options.onRequest?.(req, res);
      next(err);
    });
  });
  app.use((req, res, next) => {
    if (!authorized(req, store.token)) return apiError(res, 401, 'unauthorized', 'Invalid credentials provided.');
    if (!(req.get('accept') ?? '').includes(API_ACCEPT)) {
      return apiError(res, 406, 'not_acceptable', `Set Accept: ${API_ACCEPT} and try again.`);
    }
    // An empty pool refuses the call; otherwise the call spends one token.
    res.set('Request-Id', randomUUID());
    refill(store);
    if (store.rateLimitRemaining > 0) store.rateLimitRemaining -= 1;
    else {
      res.set('RateLimit-Remaining', '0');
      return apiError(res, 429, 'rate_limit', 'Your account reached the API rate limit.');
    }
    res.set('RateLimit-Remaining', String(store.rateLimitRemaining));
    next();
  });
  if (options.admitted) app.use(options.admitted);

  app.get('/apps/:app', (req, res) => {
    if (req.params.app !== store.app.name && req.params.app !== store.app.id) return apiError(res, 404, 'not_found', "Couldn't find that app.", { resource: 'app' });
    res.type(API_CONTENT_TYPE).json({ ...store.app });
  });
  app.use('/apps/:app', (req, res, next) => {
    if (req.params.app !== store.app.name && req.params.app !== store.app.id) return apiError(res, 404, 'not_found', "Couldn't find that app.", { resource: 'app' });
    next();
  });
  app.get('/apps/:app/formation', (_req, res) => {
    res.type(API_CONTENT_TYPE).json([...store.formation.values()].map(show));
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
    if (body.quantity !== undefined && !validQuantity(body.quantity)) return invalidQuantity(res);
    const refused = refusal(row, body.quantity);
    if (refused) return apiError(res, 422, 'invalid_params', refused);
    if (body.quantity !== undefined) apply(row, body.quantity as number);
    if (typeof body.size === 'string') row.size = body.size;
    res.type(API_CONTENT_TYPE).json(show(row));
    notify();
  });
  app.patch('/apps/:app/formation', (req, res) => {
    const updates = (req.body as { updates?: unknown } | undefined)?.updates;
    if (!Array.isArray(updates)) return apiError(res, 422, 'invalid_params', 'Missing updates: expected {"updates": [{"type": …, "quantity": …}]}.');
    // All or nothing: every update is checked before any is applied.
    const rows: Array<[FormationRow, { quantity?: unknown; size?: unknown }]> = [];
    for (const update of updates as Array<{ type?: unknown; quantity?: unknown; size?: unknown }>) {
      const row = typeof update.type === 'string' ? find(update.type) : undefined;
      if (!row) return apiError(res, 404, 'not_found', "Couldn't find that formation.", { resource: 'formation' });
      if (update.quantity !== undefined && !validQuantity(update.quantity)) return invalidQuantity(res);
      const refused = refusal(row, update.quantity);
      if (refused) return apiError(res, 422, 'invalid_params', refused);
      rows.push([row, update]);
    }
    for (const [row, update] of rows) {
      if (update.quantity !== undefined) apply(row, update.quantity as number);
      if (typeof update.size === 'string') row.size = update.size;
    }
    res.type(API_CONTENT_TYPE).json(rows.map(([row]) => show(row)));
    notify();
  });
  app.use((_req, res) => apiError(res, 404, 'not_found', 'The requested API endpoint was not found.'));
  app.use((err: Error & { status?: number }, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err); // an onChange hook that threw after the answer went out
    if (err.status && err.status < 500) return apiError(res, err.status, 'bad_request', err.message);
    apiError(res, 500, 'internal_server_error', err.message);
  });
  return app;
}
