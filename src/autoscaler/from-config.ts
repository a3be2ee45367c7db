// Builds a process's autoscaler from the config and the budget, or says why there is
// none. Web and worker processes call this; both share the same Redis state, so
// whichever sees the change first makes the one platform call.
import type { BudgetPlan } from '../budget/plan.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { createAutoscaler, type Autoscaler, type SnapshotQueue } from './coordinator.js';
import { createHerokuFormation } from './heroku-formation.js';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

export function autoscalerFromConfig(
  config: Config,
  deps: { redis: import('ioredis').Redis; queue: SnapshotQueue & { name: string }; log: Logger; processName: string; plan: BudgetPlan },
): Autoscaler | null {
  const a = config.autoscaler;
  if (!a.enabled) {
    const why = !a.requested ? 'AUTOSCALER=off' : 'HEROKU_API_KEY or HEROKU_APP_NAME is not set';
    deps.log.info(`autoscaler: off (${why}); run the worker as a normal dyno: heroku ps:scale worker=1`);
    return null;
  }
  const host = new URL(a.apiUrl).hostname;
  const formation = createHerokuFormation({
    apiKey: a.apiKey!,
    appName: a.appName!,
    apiUrl: a.apiUrl,
    processType: 'worker',
    platform: host === 'api.heroku.com' ? 'heroku' : LOOPBACK.has(host) ? 'local' : host,
  });
  const { plan } = deps;
  const limit = plan.limitedBy === 'redis' ? plan.redis.limit : plan.postgres.limit;
  return createAutoscaler({
    redis: deps.redis,
    queue: deps.queue,
    formation,
    ceiling: plan.maxWorkerDynos,
    ceilingReason: `${plan.limitedBy === 'redis' ? 'Redis' : 'Postgres'}: ${limit} connections leave room for ${plan.maxWorkerDynos} worker dyno(s)`,
    policyOptions: { idleTimeoutMs: a.idleTimeoutMs, jobsPerWorker: a.jobsPerWorker },
    intervalMs: config.reconcileIntervalMs,
    processName: deps.processName,
    log: deps.log,
    keyPrefix: `nanoscale:${deps.queue.name}:autoscaler`,
  });
}
