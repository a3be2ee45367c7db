// The one place that reads the environment. `loadConfig()` validates every variable
// with zod and returns a frozen, typed Config; a bad value throws ConfigError whose
// message names the variable, the value it got and how to fix it, and each main.ts
// prints that and exits 1 before opening any connection.
import { z } from 'zod';
import { redactUrl } from './redact.js';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const seconds = (min: number, max: number) => z.coerce.number().min(min).max(max);
const bool = z
  .enum(['1', '0', 'true', 'false', 'on', 'off', 'yes', 'no'])
  .transform((v) => ['1', 'true', 'on', 'yes'].includes(v));
const url = (schemes: string[]) =>
  z.string().refine((v) => {
    try {
      return schemes.includes(new URL(v).protocol.replace(/:$/, ''));
    } catch {
      return false;
    }
  }, `must be a URL starting with ${schemes.map((s) => `${s}://`).join(' or ')}`);

/** Each variable: its schema, its default, and the fix to suggest when it is wrong. */
const variables = {
  NODE_ENV: { schema: z.enum(['development', 'production', 'test']), default: 'development', fix: 'use development, production or test' },
  PORT: { schema: int(1, 65535), default: '3000', fix: 'use a TCP port number' },
  DYNO: { schema: z.string().regex(/^[A-Za-z0-9_.-]{1,40}$/), default: 'local.1', fix: 'Heroku sets it (web.1, worker.2); locally leave it unset' },
  WEB_CONCURRENCY: { schema: int(1, 64), default: '3', fix: 'use the number of web processes per dyno, e.g. 3' },
  WEB_CONCURRENCY_SET_BY: { schema: z.string().max(100), default: undefined, fix: 'leave it to the buildpack: it marks a WEB_CONCURRENCY it computed' },
  WORKER_CONCURRENCY: { schema: int(1, 50), default: '2', fix: 'use the number of jobs one worker process runs at once, e.g. 2' },
  REDIS_URL: { schema: url(['redis', 'rediss']), default: undefined, fix: 'set it to your Redis URL (redis://… or rediss://…); `npm start` sets it for you locally' },
  REDIS_TLS_REJECT_UNAUTHORIZED: { schema: bool, default: 'false', fix: 'use true to verify the Redis TLS certificate, false for Heroku’s self-signed ones' },
  DATABASE_URL: { schema: url(['postgres', 'postgresql']), default: undefined, fix: 'set it to your Postgres URL (postgres://…); `npm start` sets it for you locally' },
  WEB_DATABASE_POOL_SIZE: { schema: int(1, 50), default: '2', fix: 'use the number of Postgres connections one web process may open, e.g. 2' },
  WORKER_DATABASE_POOL_SIZE: { schema: int(1, 50), default: '3', fix: 'use the number of Postgres connections one worker process may open, e.g. 3' },
  SMTP_URL: { schema: url(['smtp', 'smtps']), default: undefined, fix: 'set it to your SMTP server (smtp://user:pass@host:587 or smtps://…:465); `npm start` sets it for you locally' },
  MAIL_FROM: { schema: z.string().min(3).max(200), default: 'nanoscale <downloads@nanoscale.invalid>', fix: 'use a sender address your SMTP server accepts, e.g. "Downloads <downloads@example.com>"' },
  QUEUE_NAME: { schema: z.string().regex(/^[A-Za-z0-9_-]{1,60}$/), default: 'downloads', fix: 'use letters, digits, - and _' },
  MAX_PAGES: { schema: int(1, 1000), default: '100', fix: 'use the largest number of pages a person may ask for, e.g. 100' },
  DOWNLOAD_TTL: { schema: seconds(60, 30 * 86400), default: '86400', fix: 'use seconds a finished download stays available, e.g. 86400 (24 h)' },
  LOG_LEVEL: { schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), default: 'info', fix: 'use error, warn, info or debug' },
  DEV_MAIL_DIR: { schema: z.string().min(1), default: undefined, fix: 'leave it unset; `npm start` sets it to the folder its SMTP catcher writes to' },
  LOCAL_DATA_DIR: { schema: z.string().min(1), default: '.data', fix: 'use a folder for `npm start`’s embedded Postgres and captured mail' },
  SESSION_SECRET: { schema: z.string().min(32), default: undefined, fix: 'set a random string of at least 32 characters (app.json generates one; `openssl rand -hex 32`)' },
  ADMIN_PASSWORD: { schema: z.string().min(12), default: undefined, fix: 'set a password of at least 12 characters for /admin (app.json generates one)' },
  RATE_LIMIT_PER_IP: { schema: int(1, 1_000_000), default: '30', fix: 'use how many download requests one IP address may make per 10 minutes, e.g. 30' },
  RATE_LIMIT_PER_EMAIL: { schema: int(1, 1_000_000), default: '10', fix: 'use how many downloads one email address may request per hour, e.g. 10' },
  AUTOSCALER: { schema: z.enum(['on', 'off']), default: 'on', fix: 'use on (scale the worker with the queue) or off (run the worker as a normal dyno)' },
  HEROKU_API_KEY: { schema: z.string().min(8).max(200), default: undefined, fix: 'create a token with `heroku authorizations:create -d nanoscale-autoscaler`' },
  HEROKU_APP_NAME: { schema: z.string().regex(/^[a-z][a-z0-9-]{1,29}$/), default: undefined, fix: 'use the app’s name as `heroku apps` lists it' },
  HEROKU_API_URL: { schema: url(['https', 'http']), default: 'https://api.heroku.com', fix: 'leave it at https://api.heroku.com (npm start points it at the local dyno manager)' },
  IDLE_TIMEOUT: { schema: seconds(1, 86_400), default: '60', fix: 'use the seconds of idleness before the worker is scaled to zero, e.g. 60' },
  AUTOSCALE_INTERVAL: { schema: seconds(0.2, 3_600), default: '15', fix: 'use the seconds between reconcile passes, e.g. 15' },
  JOBS_PER_WORKER: { schema: int(1, 10_000), default: '10', fix: 'use how many pending jobs justify one more worker dyno, e.g. 10' },
  JOB_LOCK_TIMEOUT: { schema: seconds(1, 600), default: '30', fix: 'use the seconds after which a job whose worker died is handed to another, e.g. 30' },
  REDIS_MAX_CONNECTIONS: { schema: int(1, 100000), default: '10', fix: 'use your Redis plan’s connection limit (10 for the Nano plan this app is sized for)' },
  REDIS_RESERVED_CONNECTIONS: { schema: int(0, 100000), default: '2', fix: 'use how many Redis connections to keep free for consoles, the release phase and deploy overlap, e.g. 2' },
  WEB_DYNOS: { schema: int(0, 100), default: '2', fix: 'use how many web dynos the app runs, e.g. 2' },
  DATABASE_MAX_CONNECTIONS: { schema: int(1, 100000), default: '20', fix: 'use your Postgres plan’s connection limit (20 on Heroku’s essential plans)' },
} as const;

export type VariableName = keyof typeof variables;
/** Set by the platform or its add-ons, not by app.json's `env`. */
export const PLATFORM_VARIABLE_NAMES: readonly VariableName[] = ['PORT', 'DYNO', 'REDIS_URL', 'DATABASE_URL', 'WEB_CONCURRENCY_SET_BY'];
/** Read only by `npm start` (or set by it for its children): never on Heroku. */
export const LOCAL_VARIABLE_NAMES: readonly VariableName[] = ['DEV_MAIL_DIR', 'LOCAL_DATA_DIR'];
/** Every variable the deployed app reads (app.json must describe each of them). */
export const VARIABLE_NAMES = (Object.keys(variables) as VariableName[]).filter((n) => n !== 'LOCAL_DATA_DIR');
const SECRET_URLS: VariableName[] = ['REDIS_URL', 'DATABASE_URL', 'SMTP_URL'];
const SECRETS: VariableName[] = ['SESSION_SECRET', 'ADMIN_PASSWORD', 'HEROKU_API_KEY'];
/** May stay unset: a feature is off (or, in development, a fixed value stands in). */
const OPTIONAL: VariableName[] = ['DEV_MAIL_DIR', 'SESSION_SECRET', 'ADMIN_PASSWORD', 'WEB_CONCURRENCY_SET_BY', 'HEROKU_API_KEY', 'HEROKU_APP_NAME'];
/** Stands in for SESSION_SECRET outside production only: it signs nothing of value. */
const DEVELOPMENT_SESSION_SECRET = 'nanoscale-development-session-secret-not-for-production';

export class ConfigError extends Error {
  readonly code = 'nanoscale:config';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function read(env: NodeJS.ProcessEnv, names: readonly VariableName[]): Record<VariableName, unknown> {
  const problems: string[] = [];
  const values = {} as Record<VariableName, unknown>;
  for (const name of names) {
    const spec = variables[name];
    const raw = env[name] === undefined || env[name] === '' ? spec.default : env[name];
    if (raw === undefined) {
      if (OPTIONAL.includes(name)) continue;
      problems.push(`${name} is not set: ${spec.fix}`);
      continue;
    }
    const parsed = (spec.schema as z.ZodType).safeParse(raw);
    if (parsed.success) {
      values[name] = parsed.data;
    } else {
      const shown = SECRET_URLS.includes(name) ? redactUrl(String(raw)) : SECRETS.includes(name) ? '***' : JSON.stringify(raw);
      const why = parsed.error.issues[0]?.message ?? 'invalid';
      problems.push(`${name}=${shown} is invalid (${why}): ${spec.fix}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return values;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  const v = read(env, VARIABLE_NAMES) as {
    [K in VariableName]: z.output<(typeof variables)[K]['schema']>;
  };
  if (v.NODE_ENV === 'production' && !v.SESSION_SECRET) {
    throw new ConfigError([`SESSION_SECRET is not set: ${variables.SESSION_SECRET.fix}`]);
  }
  return Object.freeze({
    env: v.NODE_ENV,
    isProduction: v.NODE_ENV === 'production',
    port: v.PORT,
    dyno: v.DYNO,
    webConcurrency: v.WEB_CONCURRENCY,
    /** `buildpack`: Heroku's Node.js buildpack computed WEB_CONCURRENCY from dyno memory; the budget may lower it. */
    webConcurrencySource: v.WEB_CONCURRENCY_SET_BY ? ('buildpack' as const) : ('config' as const),
    workerConcurrency: v.WORKER_CONCURRENCY,
    redisUrl: v.REDIS_URL,
    redisTlsRejectUnauthorized: v.REDIS_TLS_REJECT_UNAUTHORIZED,
    databaseUrl: v.DATABASE_URL,
    webDatabasePoolSize: v.WEB_DATABASE_POOL_SIZE,
    workerDatabasePoolSize: v.WORKER_DATABASE_POOL_SIZE,
    smtpUrl: v.SMTP_URL,
    mailFrom: v.MAIL_FROM,
    queueName: v.QUEUE_NAME,
    maxPages: v.MAX_PAGES,
    downloadTtlMs: Math.round(v.DOWNLOAD_TTL * 1000),
    logLevel: v.LOG_LEVEL,
    devMailDir: v.DEV_MAIL_DIR as string | undefined,
    sessionSecret: (v.SESSION_SECRET as string | undefined) ?? DEVELOPMENT_SESSION_SECRET,
    /** Unset: the /admin pages answer 404. */
    adminPassword: v.ADMIN_PASSWORD as string | undefined,
    rateLimits: { perIpPer10Minutes: v.RATE_LIMIT_PER_IP, perEmailPerHour: v.RATE_LIMIT_PER_EMAIL },
    jobLockMs: Math.round(v.JOB_LOCK_TIMEOUT * 1000),
    /** AUTOSCALE_INTERVAL: the periodic reconcile of rows without jobs and of the formation. */
    reconcileIntervalMs: Math.round(v.AUTOSCALE_INTERVAL * 1000),
    autoscaler: {
      /** Off when AUTOSCALER=off or the platform token or app name is missing. */
      enabled: v.AUTOSCALER === 'on' && Boolean(v.HEROKU_API_KEY) && Boolean(v.HEROKU_APP_NAME),
      requested: v.AUTOSCALER === 'on',
      apiKey: v.HEROKU_API_KEY as string | undefined,
      appName: v.HEROKU_APP_NAME as string | undefined,
      apiUrl: v.HEROKU_API_URL,
      idleTimeoutMs: Math.round(v.IDLE_TIMEOUT * 1000),
      jobsPerWorker: v.JOBS_PER_WORKER,
    },
    budget: {
      redisMaxConnections: v.REDIS_MAX_CONNECTIONS,
      redisReservedConnections: v.REDIS_RESERVED_CONNECTIONS,
      webDynos: v.WEB_DYNOS,
      databaseMaxConnections: v.DATABASE_MAX_CONNECTIONS,
    },
  });
}

export type Config = ReturnType<typeof loadConfig>;

/** The release phase needs only the database: it must not fail for want of REDIS_URL. */
export function loadReleaseConfig(env: NodeJS.ProcessEnv = process.env) {
  const v = read(env, ['DATABASE_URL']);
  return Object.freeze({ databaseUrl: v.DATABASE_URL as string });
}

/** The budget's inputs alone (`npm run budget` needs no service URL). */
export function loadBudgetConfig(env: NodeJS.ProcessEnv = process.env) {
  const v = read(env, [
    'REDIS_MAX_CONNECTIONS', 'REDIS_RESERVED_CONNECTIONS', 'WEB_DYNOS', 'DATABASE_MAX_CONNECTIONS',
    'WEB_CONCURRENCY', 'WORKER_CONCURRENCY', 'WEB_DATABASE_POOL_SIZE', 'WORKER_DATABASE_POOL_SIZE',
  ]) as Record<string, number>;
  return Object.freeze({
    redisMaxConnections: v.REDIS_MAX_CONNECTIONS!,
    redisReservedConnections: v.REDIS_RESERVED_CONNECTIONS!,
    webDynos: v.WEB_DYNOS!,
    databaseMaxConnections: v.DATABASE_MAX_CONNECTIONS!,
    webConcurrency: v.WEB_CONCURRENCY!,
    workerConcurrency: v.WORKER_CONCURRENCY!,
    webDatabasePoolSize: v.WEB_DATABASE_POOL_SIZE!,
    workerDatabasePoolSize: v.WORKER_DATABASE_POOL_SIZE!,
  });
}

/** What `npm start` reads: services it should use instead of starting its own. */
export function loadLocalConfig(env: NodeJS.ProcessEnv = process.env) {
  const optional = (name: VariableName) => (env[name] ? (read(env, [name])[name] as string) : undefined);
  const v = read(env, ['PORT', 'REDIS_MAX_CONNECTIONS', 'LOCAL_DATA_DIR', 'AUTOSCALER']);
  return Object.freeze({
    port: v.PORT as number,
    autoscaler: v.AUTOSCALER === 'on',
    dataDir: v.LOCAL_DATA_DIR as string,
    redisMaxConnections: v.REDIS_MAX_CONNECTIONS as number,
    redisUrl: optional('REDIS_URL'),
    databaseUrl: optional('DATABASE_URL'),
    smtpUrl: optional('SMTP_URL'),
  });
}

/** The environment for a child process: this one's, plus overrides (local stack, tests). */
export function childEnv(overrides: Record<string, string | undefined>): NodeJS.ProcessEnv {
  return { ...process.env, ...overrides };
}
