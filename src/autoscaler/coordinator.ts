// The autoscaler of one process: it reads the queue, asks the policy, and, when the
// answer differs from the known formation, lets one process at a time tell the
// platform. It opens no connection: the shared Redis client and the Queue built on it
// are passed in. Lifecycle:
// 1. createAutoscaler(deps) in each process (web cluster workers and worker dynos);
// 2. triggers: notifyEnqueued() after each enqueue (returns at once, never throws),
//    tick() from a worker's idle monitor, and start(): a reconcile every intervalMs
//    taken by one process at a time (a short Redis turn), for delayed and retried jobs
//    coming due at zero and for calls that failed;
// 3. an evaluation reads the shared state hash and the queue, decides, and stops there
//    when the decision equals the known formation (the usual case: no lock, no call);
// 4. otherwise it takes the platform lock (SET NX PX), re-reads the state under it,
//    reads the formation if it is unknown, uncertain or old, and PATCHes; a success
//    records the new quantity, a failure records only the error and a back-off;
// 5. stop() ends the timers and waits for the evaluation in flight.
// Per process at most one evaluation runs and at most one waits behind it, so a burst
// of enqueues costs a few Redis reads and, across all processes, one platform call.
import { randomBytes } from 'node:crypto';
import type { JobType } from 'bullmq';
import type { Redis } from 'ioredis';
import { reportError, type Logger } from '../log.js';
import { FormationError, type Formation } from './heroku-formation.js';
import { decide, policyOptions, type PolicyOptions, type QueueSnapshot, type ScalingDecision } from './policy.js';
import { autoscalerKeys, EXTEND, parseStored, RELEASE, type AutoscalerStatus, type Stored } from './state.js';

export { autoscalerKeys, type AutoscalerStatus };

/** The part of a BullMQ Queue the snapshot reads (the process's Queue, on its shared client). */
export interface SnapshotQueue {
  getJobCounts(...types: JobType[]): Promise<Record<string, number>>;
  getDelayed(start?: number, end?: number): Promise<Array<{ timestamp: number; delay: number; processedOn?: number }>>;
}

export interface AutoscalerOptions {
  /** The process's one shared client: state hash, locks. Never duplicated. */
  redis: Redis;
  queue: SnapshotQueue;
  formation: Formation;
  /** Default { idleTimeoutMs: 60_000, jobsPerWorker: 10 }. */
  policyOptions?: Partial<PolicyOptions>;
  /** Most worker dynos the connection budget allows (planBudget(...).maxWorkerDynos). */
  ceiling: number;
  /** Why that ceiling, for the status page, e.g. `Redis: 10 connections`. */
  ceilingReason?: string;
  /** This process, e.g. `web.1/2`: recorded with each change. */
  processName: string;
  log: Logger;
  /** Default Date.now. */
  now?: () => number;
  /** Default `nanoscale:autoscaler`; keys are `<prefix>:<process type>[:lock|:reconcile]`. */
  keyPrefix?: string;
  /** Reconcile period (AUTOSCALE_INTERVAL). Default 15_000. */
  intervalMs?: number;
  /** Delayed jobs due within this count as work. Default intervalMs. */
  lookAheadMs?: number;
  /** First back-off after a 5xx, time-out or network error, doubled per failure. Default 2_000. */
  backoffBaseMs?: number;
  /** Longest back-off; also used for errors a retry cannot fix (401, 404, 422). Default 300_000. */
  backoffMaxMs?: number;
  /** Back-off after a 429 without Retry-After or RateLimit-Remaining 0 (the pool refills ~75/min). Default 60_000. */
  rateLimitBackoffMs?: number;
  /** Re-read the formation when the cached one is older (catches scaling from the dashboard). Default 600_000. */
  formationMaxAgeMs?: number;
  /** Platform lock lifetime, a bound on one turn (a read and a change). Default 2 × formation.timeoutMs + 5_000. */
  lockTtlMs?: number;
  /** How long a timed-out call keeps the lock while it may still land: Heroku's router answers within 30 s. Default 35_000. */
  unsettledHoldMs?: number;
}

export type AutoscalerAction = 'unchanged' | 'scaled' | 'failed' | 'locked' | 'backoff' | 'error' | 'stopped';

export interface AutoscalerOutcome {
  action: AutoscalerAction;
  /** The known quantity after this evaluation (null when unknown). */
  current: number | null;
  decision?: ScalingDecision;
  snapshot?: QueueSnapshot;
}


export interface Autoscaler {
  notifyEnqueued(): void;
  tick(): Promise<AutoscalerOutcome>;
  start(): void;
  stop(): Promise<void>;
  status(): Promise<AutoscalerStatus>;
}

export class AutoscalerOptionsError extends Error {
  readonly code = 'nanoscale:autoscaler-options';
  constructor(option: string, value: unknown, fix: string) {
    super(`autoscaler option ${option} must be ${fix}, got ${JSON.stringify(value)}`);
    this.name = 'AutoscalerOptionsError';
  }
}

function counts(s: QueueSnapshot): string {
  const extra = `${s.prioritized ? ` prioritized=${s.prioritized}` : ''}${s.delayedDue ? ` delayed=${s.delayedDue}` : ''}`;
  return `waiting=${s.waiting} active=${s.active}${extra}`;
}

export function createAutoscaler(options: AutoscalerOptions): Autoscaler {
  const { redis, queue, formation, log, processName, ceiling } = options;
  const policy = policyOptions(options.policyOptions);
  const now = options.now ?? Date.now;
  const intervalMs = options.intervalMs ?? 15_000;
  const lookAheadMs = options.lookAheadMs ?? intervalMs;
  const backoffBaseMs = options.backoffBaseMs ?? 2_000;
  const backoffMaxMs = options.backoffMaxMs ?? 300_000;
  const rateLimitBackoffMs = options.rateLimitBackoffMs ?? 60_000;
  const formationMaxAgeMs = options.formationMaxAgeMs ?? 600_000;
  const lockTtlMs = options.lockTtlMs ?? 2 * formation.timeoutMs + 5_000;
  const unsettledHoldMs = options.unsettledHoldMs ?? 35_000;
  if (!Number.isSafeInteger(ceiling) || ceiling < 0) throw new AutoscalerOptionsError('ceiling', ceiling, 'a whole number ≥ 0 (planBudget(...).maxWorkerDynos)');
  for (const [name, value] of Object.entries({ intervalMs, backoffBaseMs, backoffMaxMs, rateLimitBackoffMs, formationMaxAgeMs, lockTtlMs, unsettledHoldMs })) {
    if (!Number.isFinite(value) || value <= 0) throw new AutoscalerOptionsError(name, value, 'a number of milliseconds > 0');
  }
  if (!Number.isFinite(lookAheadMs) || lookAheadMs < 0) throw new AutoscalerOptionsError('lookAheadMs', lookAheadMs, 'a number of milliseconds ≥ 0');
  if (lockTtlMs <= formation.timeoutMs) throw new AutoscalerOptionsError('lockTtlMs', lockTtlMs, `longer than the formation's timeoutMs (${formation.timeoutMs})`);

  const keys = autoscalerKeys(options.keyPrefix ?? 'nanoscale:autoscaler', formation.processType);
  const type = formation.processType;
  const tag = `[${formation.platform}]`;
  const report = reportError(log, 'autoscaler');
  // Enough of the soonest delayed jobs to fill the ceiling; past that, more cannot change the answer.
  const delayedScan = Math.min(1_000, Math.max(1, ceiling * policy.jobsPerWorker));

  let started = false;
  let stopped = false;
  let interval: NodeJS.Timeout | undefined;
  let wake: { timer: NodeJS.Timeout; at: number } | undefined;
  let inFlight: Promise<AutoscalerOutcome> | undefined;
  let next: Promise<AutoscalerOutcome> | undefined;

  const read = async () => parseStored(await redis.hgetall(keys.state));
  const mustRead = (s: Stored, at: number) => s.current === null || s.uncertain || s.currentAt === null || at - s.currentAt > formationMaxAgeMs;

  /** Timed after the reads: an idle queue seen by them was idle at `at` at the latest, so idleSince never starts early. */
  async function snapshot(): Promise<QueueSnapshot> {
    const c = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed');
    // Soonest first. A retry keeps its first `timestamp` and gets its back-off as
    // `delay`, counted from when it failed; the attempt's start is the best lower bound.
    const delayed = (c.delayed ?? 0) > 0 ? await queue.getDelayed(0, delayedScan - 1) : [];
    const at = now();
    const delayedDue = delayed.filter((j) => Math.max(j.timestamp, j.processedOn ?? 0) + j.delay <= at + lookAheadMs).length;
    return { waiting: c.waiting ?? 0, prioritized: c.prioritized ?? 0, active: c.active ?? 0, delayedDue, at };
  }

  /** Keeps idleSince, and the decision when the desired quantity changed (only once the current one is known). */
  async function remember(s: Stored, decision: ScalingDecision, snap: QueueSnapshot, withDecision: boolean): Promise<void> {
    const set: Record<string, string | number> = {};
    if (decision.idleSince !== s.idleSince && decision.idleSince !== null) set.idleSince = decision.idleSince;
    if (withDecision && decision.desired !== s.desired) {
      Object.assign(set, { desired: decision.desired, rule: decision.rule, reason: decision.reason, decidedAt: snap.at, snapshot: JSON.stringify(snap) });
    }
    const clearIdle = decision.idleSince === null && s.idleSince !== null;
    if (Object.keys(set).length === 0 && !clearIdle) return;
    const m = redis.multi();
    if (Object.keys(set).length > 0) m.hset(keys.state, set);
    if (clearIdle) m.hdel(keys.state, 'idleSince');
    await m.exec();
  }

  function wakeAt(at: number): void {
    if (!started || stopped) return;
    if (wake && wake.at <= at) return;
    if (wake) clearTimeout(wake.timer);
    const timer = setTimeout(() => {
      wake = undefined;
      void schedule();
    }, Math.max(0, at - now()) + 1);
    timer.unref();
    wake = { timer, at };
  }

  async function countCall<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } finally {
      await redis.multi().hincrby(keys.state, 'calls', 1).hset(keys.state, 'lastCallAt', now()).exec();
    }
  }

  /** Records a successful call; `done` ends the failure streak (a read alone does not: the change may still fail). */
  async function succeeded(fields: Record<string, string | number>, done: boolean): Promise<void> {
    const remaining = formation.rateLimitRemaining;
    const set: Record<string, string | number> = { ...fields, quantityAt: now() };
    if (remaining !== null) set.rateLimitRemaining = remaining;
    const m = redis.multi().hset(keys.state, set).hdel(keys.state, 'uncertain', ...(done ? ['failures'] : []));
    // An empty token pool: the next call would be refused, so wait for it to refill.
    if (remaining === 0) m.hset(keys.state, 'backoffUntil', now() + rateLimitBackoffMs);
    else m.hdel(keys.state, 'backoffUntil');
    await m.exec();
    if (remaining === 0) wakeAt(now() + rateLimitBackoffMs);
  }

  async function failed(err: unknown, s: Stored, attempted: string, changing: boolean): Promise<void> {
    const at = now();
    const failures = s.consecutiveFailures + 1;
    const e = err instanceof FormationError ? err : null;
    const exponential = Math.min(backoffMaxMs, backoffBaseMs * 2 ** Math.min(failures - 1, 30));
    let backoffMs: number;
    if (e?.status === 429) backoffMs = e.retryAfterMs ?? rateLimitBackoffMs;
    else if (e && !e.retryable) backoffMs = backoffMaxMs;
    else backoffMs = Math.max(exponential, e?.retryAfterMs ?? 0);
    const remaining = formation.rateLimitRemaining;
    if (remaining === 0) backoffMs = Math.max(backoffMs, rateLimitBackoffMs);
    const message = err instanceof Error ? err.message : String(err);
    const set: Record<string, string | number> = {
      lastError: JSON.stringify({ message, status: e?.status ?? null, at, by: processName }),
      failures,
      backoffUntil: at + backoffMs,
    };
    if (remaining !== null) set.rateLimitRemaining = remaining;
    // A refused change (4xx) did not happen; after a 5xx or no answer it may have.
    if (changing && !(e?.status !== null && e?.status !== undefined && e.status < 500)) set.uncertain = 1;
    await redis.hset(keys.state, set);
    log.warn({ autoscaler: { attempted, status: e?.status ?? null, backoffMs, by: processName } }, `autoscaler: ${attempted} failed: ${message}; next try in ${Math.ceil(backoffMs / 1000)}s ${tag}`);
    wakeAt(at + backoffMs);
  }

  /** Step 4 of the lifecycle, under the platform lock. */
  async function platformTurn(snap: QueueSnapshot): Promise<AutoscalerOutcome> {
    const token = `${processName}:${randomBytes(6).toString('hex')}`;
    if ((await redis.set(keys.lock, token, 'PX', lockTtlMs, 'NX')) !== 'OK') {
      wakeAt(now() + Math.min(intervalMs, 1_000));
      return { action: 'locked', current: null, snapshot: snap };
    }
    let releaseWhenSettled = false;
    try {
      const s = await read();
      if (s.backoffUntil !== null && s.backoffUntil > now()) {
        wakeAt(s.backoffUntil);
        return { action: 'backoff', current: s.current, snapshot: snap };
      }
      let current = s.current;
      if (current === null || mustRead(s, now())) {
        try {
          current = await countCall(() => formation.getQuantity());
        } catch (err) {
          releaseWhenSettled = true;
          await failed(err, s, `${type} formation read`, false);
          return { action: 'failed', current: s.current, snapshot: snap };
        }
        if (current !== s.current) log.info(`autoscaler: ${type} is at ${current}${s.current === null ? '' : ` (cached ${s.current})`} ${tag}`);
        await succeeded({ quantity: current }, false);
      }
      const decision = decide(snap, { current, ceiling, idleSince: s.idleSince }, policy);
      await remember(s, decision, snap, true);
      if (decision.desired === current) {
        if (s.consecutiveFailures > 0) await redis.hdel(keys.state, 'failures');
        return { action: 'unchanged', current, decision, snapshot: snap };
      }
      const change = `${type} ${current} -> ${decision.desired}`;
      let applied: number;
      try {
        applied = await countCall(() => formation.setQuantity(decision.desired));
      } catch (err) {
        releaseWhenSettled = true;
        await failed(err, s, change, true);
        return { action: 'failed', current, decision, snapshot: snap };
      }
      const at = now();
      await succeeded({ quantity: applied, lastChange: JSON.stringify({ from: current, to: applied, at, by: processName }) }, true);
      log.info(
        { autoscaler: { from: current, to: applied, rule: decision.rule, reason: decision.reason, snapshot: snap, by: processName } },
        `autoscaler: ${type} ${current} -> ${applied} (${counts(snap)}) ${tag}`,
      );
      // Work may have arrived while the call ran (another process saw the old quantity and stopped): look once more.
      void schedule();
      return { action: 'scaled', current: applied, decision, snapshot: snap };
    } finally {
      if (!releaseWhenSettled) await redis.eval(RELEASE, 1, keys.lock, token);
      else {
        // heroku-client may still deliver (or resend) the failed call: keep everyone off the platform until it is done.
        void redis
          .eval(EXTEND, 1, keys.lock, token, unsettledHoldMs)
          .then(() => formation.settled())
          .then(() => redis.eval(RELEASE, 1, keys.lock, token))
          .catch(report);
      }
    }
  }

  async function evaluate(): Promise<AutoscalerOutcome> {
    const [s, snap] = await Promise.all([read(), snapshot()]);
    const at = snap.at;
    const known = mustRead(s, at) ? null : s.current;
    const decision = decide(snap, { current: known ?? s.current ?? 0, ceiling, idleSince: s.idleSince }, policy);
    await remember(s, decision, snap, known !== null);
    if (decision.rule === 'idle-wait' && decision.idleSince !== null) wakeAt(decision.idleSince + policy.idleTimeoutMs);
    if (known !== null && decision.desired === known) return { action: 'unchanged', current: known, decision, snapshot: snap };
    if (s.backoffUntil !== null && s.backoffUntil > at) {
      wakeAt(s.backoffUntil);
      return { action: 'backoff', current: s.current, decision, snapshot: snap };
    }
    return platformTurn(snap);
  }

  /** At most one evaluation in flight and one queued behind it, per process. */
  function schedule(): Promise<AutoscalerOutcome> {
    if (stopped) return Promise.resolve({ action: 'stopped', current: null });
    if (!inFlight) {
      inFlight = evaluate()
        .catch((err: unknown): AutoscalerOutcome => {
          report(err);
          return { action: 'error', current: null };
        })
        .finally(() => {
          inFlight = undefined;
        });
      return inFlight;
    }
    next ??= inFlight.then(() => {
      next = undefined;
      return schedule();
    });
    return next;
  }

  async function reconcile(): Promise<void> {
    try {
      // One reconcile per interval across all processes; a little shorter than the interval so the turn always comes back.
      if ((await redis.set(keys.reconcile, processName, 'PX', Math.max(1, Math.floor(intervalMs * 0.9)), 'NX')) === 'OK') await schedule();
    } catch (err) {
      report(err);
    }
  }

  return {
    notifyEnqueued() {
      try {
        void schedule();
      } catch (err) {
        report(err);
      }
    },
    tick: () => schedule(),
    start() {
      if (started || stopped) return;
      started = true;
      interval = setInterval(() => void reconcile(), intervalMs);
      interval.unref();
      setImmediate(() => void reconcile());
    },
    async stop() {
      stopped = true;
      clearInterval(interval);
      if (wake) clearTimeout(wake.timer);
      wake = undefined;
      await Promise.all([inFlight, next]);
    },
    async status() {
      return { processType: type, platform: formation.platform, ceiling, ceilingReason: options.ceilingReason ?? null, ...(await read()) };
    },
  };
}
