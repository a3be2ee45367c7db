// The actuator: one process type's quantity on the Heroku Platform API, through
// heroku-client, and nothing else ("how many" and "set how many"). Lifecycle:
// 1. createHerokuFormation() makes a client for HEROKU_API_URL (the real API, or the
//    local dyno manager on loopback: one code path, two platforms);
// 2. getQuantity() is GET /apps/{app}/formation/{type}; setQuantity(n) is PATCH with
//    {quantity}; every answer's RateLimit-Remaining is kept for the caller;
// 3. a failure is a FormationError with the HTTP status, whether a retry may help and,
//    for 429, how long to wait;
// 4. settled() says when no request sent so far can still reach the platform.
//
// Why settled(): heroku-client resends a request by itself after a connection error
// (up to 4 times, 1 s to 8 s apart), and after its own `timeout` aborts one. So this
// module never passes `timeout` (an aborted PATCH would be silently resent, perhaps
// after we decided otherwise); it gives up waiting at timeoutMs instead and leaves
// the request to finish, and the caller keeps its platform lock until settled().
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';

export interface Formation {
  /** The process type scaled, e.g. `worker`. */
  readonly processType: string;
  /** Label for log lines, e.g. `heroku` or `local`. */
  readonly platform: string;
  /** How long one call may take before it counts as failed. */
  readonly timeoutMs: number;
  /** The last RateLimit-Remaining the platform sent; null before any answer carried one. */
  readonly rateLimitRemaining: number | null;
  getQuantity(): Promise<number>;
  /** Resolves with the quantity the platform reports after the change. */
  setQuantity(quantity: number): Promise<number>;
  /** Resolves once every request sent so far has finished (answered or given up by heroku-client). */
  settled(): Promise<void>;
}

export interface HerokuFormationOptions {
  /** HEROKU_API_KEY: an API token allowed to scale the app. */
  apiKey: string;
  /** HEROKU_APP_NAME. */
  appName: string;
  /** HEROKU_API_URL. Default https://api.heroku.com. */
  apiUrl?: string;
  /** Default `worker`. */
  processType?: string;
  /** Default 10_000: past it a call fails as `timeout` (retryable). */
  timeoutMs?: number;
  /** Default `heroku`. */
  platform?: string;
}

export type FormationFailure = 'http' | 'timeout' | 'network' | 'invalid-response';

export class FormationError extends Error {
  readonly code = 'nanoscale:formation';
  constructor(
    message: string,
    readonly failure: FormationFailure,
    /** HTTP status, or null when no answer came (timeout, network). */
    readonly status: number | null,
    /** True for 429, 5xx, time-outs and network errors: trying again later may work. */
    readonly retryable: boolean,
    /** From Retry-After on a 429/503; null when the platform did not say. */
    readonly retryAfterMs: number | null,
    /** The platform's error id (`rate_limit`, `unauthorized`, …) when it sent one. */
    readonly platformId: string | null = null,
  ) {
    super(message);
    this.name = 'FormationError';
  }
}

export class HerokuFormationOptionsError extends Error {
  readonly code = 'nanoscale:formation-options';
  constructor(message: string) {
    super(message);
    this.name = 'HerokuFormationOptionsError';
  }
}

// heroku-client ships no types: this is the part of it used here (lib/index.js, lib/request.js).
interface HerokuRequest {
  method: 'GET' | 'PATCH';
  path: string;
  body?: unknown;
  /** Called with each raw response before heroku-client reads it: the only way to its headers. */
  middleware?: (res: IncomingMessage, next: () => void) => void;
}
interface HerokuClient {
  request(options: HerokuRequest): Promise<unknown>;
}
type HerokuClientClass = new (options: { token: string; host: string; headers?: Record<string, string>; userAgent?: string }) => HerokuClient;
interface HerokuClientError extends Error {
  statusCode?: number;
  code?: string;
  body?: unknown;
}

const Heroku = createRequire(import.meta.url)('heroku-client') as HerokuClientClass;

const PROCESS_TYPE = /^[-\w]{1,128}$/;

function header(headers: IncomingHttpHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Retry-After is seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, nowMs = Date.now()): number | null {
  if (value === undefined || value.trim() === '') return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

function readQuantity(body: unknown, where: string): number {
  const quantity = (body as { quantity?: unknown } | null)?.quantity;
  if (typeof quantity !== 'number' || !Number.isSafeInteger(quantity) || quantity < 0) {
    throw new FormationError(`${where}: the answer has no quantity (got ${JSON.stringify(body)?.slice(0, 200)})`, 'invalid-response', 200, true, null);
  }
  return quantity;
}

export function createHerokuFormation(options: HerokuFormationOptions): Formation {
  const { apiKey, appName } = options;
  const apiUrl = options.apiUrl ?? 'https://api.heroku.com';
  const processType = options.processType ?? 'worker';
  const timeoutMs = options.timeoutMs ?? 10_000;
  const platform = options.platform ?? 'heroku';
  if (!apiKey) throw new HerokuFormationOptionsError('the Heroku formation needs apiKey: set HEROKU_API_KEY to a token allowed to scale the app (`heroku authorizations:create`)');
  if (!appName) throw new HerokuFormationOptionsError('the Heroku formation needs appName: set HEROKU_APP_NAME to the app whose worker dynos it scales');
  if (!PROCESS_TYPE.test(processType)) throw new HerokuFormationOptionsError(`processType ${JSON.stringify(processType)} is not a Procfile process type name`);
  if (!/^https?:\/\/[^/]+/.test(apiUrl)) throw new HerokuFormationOptionsError(`apiUrl ${JSON.stringify(apiUrl)} must start with https:// or http:// (HEROKU_API_URL)`);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new HerokuFormationOptionsError(`timeoutMs must be a number of milliseconds > 0, got ${timeoutMs}`);

  // Bearer, as the Platform API documents; heroku-client would send the token as Basic auth.
  const client = new Heroku({
    token: apiKey,
    host: apiUrl,
    headers: { Authorization: `Bearer ${apiKey}` },
    userAgent: 'nanoscale-autoscaler (heroku-client)',
  });
  const path = `/apps/${encodeURIComponent(appName)}/formation/${encodeURIComponent(processType)}`;
  const inFlight = new Set<Promise<void>>();
  let rateLimitRemaining: number | null = null;

  function toFormationError(err: unknown, method: string, headers: IncomingHttpHeaders | undefined): FormationError {
    if (err instanceof FormationError) return err;
    const e = err as HerokuClientError;
    const where = `${platform}: ${method} ${path}`;
    if (typeof e.statusCode === 'number') {
      const body = (typeof e.body === 'object' && e.body !== null ? e.body : {}) as { id?: unknown; message?: unknown };
      const id = typeof body.id === 'string' ? body.id : null;
      const detail = typeof body.message === 'string' ? `: ${body.message}` : '';
      const status = e.statusCode;
      const retryable = status === 429 || status >= 500;
      const retryAfterMs = parseRetryAfter(header(headers, 'retry-after'));
      return new FormationError(`${where} answered ${status}${id ? ` ${id}` : ''}${detail}`, 'http', status, retryable, retryAfterMs, id);
    }
    if (err instanceof SyntaxError) {
      return new FormationError(`${where}: the answer is not JSON (${err.message})`, 'invalid-response', null, true, null);
    }
    const code = typeof e.code === 'string' ? ` (${e.code})` : '';
    return new FormationError(`${where} failed${code}: ${e.message ?? String(err)}`, 'network', null, true, null);
  }

  async function call(method: 'GET' | 'PATCH', body?: { quantity: number }): Promise<number> {
    let headers: IncomingHttpHeaders | undefined;
    const request = client.request({
      method,
      path,
      ...(body ? { body } : {}),
      middleware: (res, next) => {
        headers = res.headers;
        const remaining = Number.parseInt(header(res.headers, 'ratelimit-remaining') ?? '', 10);
        if (Number.isFinite(remaining)) rateLimitRemaining = remaining;
        next();
      },
    });
    const finished = request.then(
      () => undefined,
      () => undefined,
    );
    inFlight.add(finished);
    void finished.then(() => inFlight.delete(finished));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new FormationError(`${platform}: ${method} ${path} took longer than ${timeoutMs} ms`, 'timeout', null, true, null)),
        timeoutMs,
      );
    });
    try {
      return readQuantity(await Promise.race([request, deadline]), `${platform}: ${method} ${path}`);
    } catch (err) {
      throw toFormationError(err, method, headers);
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    processType,
    platform,
    timeoutMs,
    get rateLimitRemaining() {
      return rateLimitRemaining;
    },
    getQuantity: () => call('GET'),
    setQuantity(quantity: number) {
      if (!Number.isSafeInteger(quantity) || quantity < 0) {
        return Promise.reject(new RangeError(`setQuantity needs a whole number ≥ 0, got ${quantity}`));
      }
      return call('PATCH', { quantity });
    },
    async settled() {
      await Promise.all([...inFlight]);
    },
  };
}
