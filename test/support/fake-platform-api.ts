// An HTTP fake of the Heroku Platform API's formation endpoints for one app, for tests
// that drive the real actuator (heroku-client) over a real socket. The endpoints, the
// token/Accept/rate-limit checks and the JSON shapes are src/local/formation-api.ts,
// the same code `npm start`'s dyno manager serves; this file adds what only tests need.
// Lifecycle:
// 1. createFakePlatformApp(state) is the Express app, a value; startFakePlatformApi()
//    listens on a free loopback port and returns the handle tests use;
// 2. every request is recorded (method, path, body, time, status) before it is judged;
// 3. formation-api checks the token (Bearer, or Basic with the token as password, as
//    the real API accepts), the Accept version, the app and the process type, and
//    answers with the real JSON shapes, error bodies ({id, message}) and a
//    RateLimit-Remaining header that goes down by one per call (429 rate_limit once
//    empty, like the real pool; the fake's pool never refills);
// 4. failNext(n, …) and slowNext(n, ms) make the next n calls answer 429/5xx or late.
//    A slow answer applies its change at once and answers late, like a platform that
//    did the work but whose answer the client gave up on.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Express } from 'express';
import { apiError, createFormationApi, createFormationStore, type FormationRow, type FormationStore } from '../../src/local/formation-api.js';

export type { FormationRow };

export interface PlatformCall {
  method: string;
  path: string;
  body: unknown;
  /** When the request arrived (ms since the epoch). */
  at: number;
  /** The status answered; undefined while the answer is pending. */
  status?: number;
}

interface Injected {
  remaining: number;
  status?: number;
  retryAfterSeconds?: number;
  delayMs?: number;
}

export interface FakePlatformState extends FormationStore {
  calls: PlatformCall[];
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

export function createFakePlatformState(options: FakePlatformOptions = {}): FakePlatformState {
  const store = createFormationStore({
    token: options.token ?? 'fake-token',
    appName: options.appName ?? 'nanoscale-test',
    formation: options.formation ?? { web: 1, worker: 0 },
    rateLimitRemaining: options.rateLimitRemaining ?? 4_500,
  });
  return { ...store, calls: [], failures: [], delays: [] };
}

/** The Express app: the formation subset of the Platform API, over `state`. */
export function createFakePlatformApp(state: FakePlatformState): Express {
  return createFormationApi(state, {
    // Record first, so even refused calls are counted.
    onRequest: (req, res) => {
      const call: PlatformCall = { method: req.method, path: req.path, body: undefined, at: Date.now() };
      if (Number(req.get('content-length') ?? 0) > 0) call.body = req.body;
      state.calls.push(call);
      res.on('finish', () => (call.status = res.statusCode));
    },
    admitted: (_req, res, next) => {
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
    },
  });
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
