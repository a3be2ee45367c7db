// Rate limits for requesting downloads and for /status (express-rate-limit), counted in Redis on the
// process's one shared connection (rate-limit-redis), so all web processes and dynos
// share the counts without a connection of their own. If Redis is unreachable the
// limits let requests through: the form keeps accepting, as the design promises.
import { rateLimit, type Options, type RateLimitRequestHandler } from 'express-rate-limit';
import type { Redis } from 'ioredis';
import { RedisStore } from 'rate-limit-redis';
import { HttpError } from './http-error.js';

/**
 * rate-limit-redis loads its scripts once, at start; if Redis was down then, every
 * later count would fail. This store loads them again on the next use instead.
 */
class RecoveringRedisStore extends RedisStore {
  override async increment(key: string) {
    try {
      await this.incrementScriptSha;
    } catch {
      this.incrementScriptSha = this.loadIncrementScript();
    }
    return super.increment(key);
  }
}

export interface RateLimitOptions {
  redis: Redis;
  keyPrefix: string;
  perIpPer10Minutes: number;
  perEmailPerHour: number;
}

function limiter(options: RateLimitOptions, name: string, config: Partial<Options>): RateLimitRequestHandler {
  return rateLimit({
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    passOnStoreError: true,
    store: new RecoveringRedisStore({
      prefix: `${options.keyPrefix}:rl:${name}:`,
      sendCommand: (command: string, ...args: string[]) => options.redis.call(command, ...args) as Promise<number>,
    }),
    ...config,
  });
}

const minutes = (ms: number) => Math.max(1, Math.ceil(ms / 60_000));

export function rateLimits(options: RateLimitOptions) {
  const perIp = limiter(options, 'ip', {
    windowMs: 10 * 60_000,
    limit: options.perIpPer10Minutes,
    handler: (req, _res, next, opts) =>
      next(new HttpError(429, `Too many download requests from your address. Try again in ${minutes(opts.windowMs)} minutes.`, 'http:rate-limited')),
  });
  const perEmail = limiter(options, 'email', {
    windowMs: 60 * 60_000,
    limit: options.perEmailPerHour,
    keyGenerator: (req) => String((req.body as { email?: unknown }).email ?? '').trim().toLowerCase(),
    skip: (req) => typeof (req.body as { email?: unknown } | undefined)?.email !== 'string',
    handler: (_req, _res, next, opts) =>
      next(new HttpError(429, `Too many downloads requested for this email address. Try again in ${minutes(opts.windowMs)} minutes.`, 'http:rate-limited')),
  });
  // /status asks Redis and Postgres for their client lists: cheap, but not for a flood.
  const status = limiter(options, 'status', {
    windowMs: 60_000,
    limit: 60,
    handler: (_req, _res, next) => next(new HttpError(429, 'Too many status requests from your address. Try again in a minute.', 'http:rate-limited')),
  });
  return { perIp, perEmail, status };
}
