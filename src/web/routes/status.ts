// The status page: the connection budget's plan next to the live truth.
// `GET /status` (HTML) and `GET /status.json` build one report per request:
// 1. the plan this process booted with (src/budget/plan.ts, passed in, pure);
// 2. the live connections, read on the process's existing shared Redis client and
//    Prisma pool (src/budget/live.ts): it opens nothing, and parts a provider forbids
//    (CLIENT LIST, CONFIG) are reported as unavailable instead of failing the page;
// 3. bars (used / reserved / free) and warnings derived from both, as plain data;
// 4. a slot for the autoscaler's status, filled when `autoscalerStatus` is given.
// Nothing secret is shown: no URL, no address, only names and counts.
import { Router } from 'express';
import type { Redis } from 'ioredis';
import type { BudgetPlan, BudgetRole, ResourceBudget } from '../../budget/plan.js';
import { readLiveConnections, type LiveConnections, type LiveKind, type Part } from '../../budget/live.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import { redactText } from '../../redact.js';

export interface StatusDeps {
  /** The process's shared Redis client (the one its Queue uses). */
  redis: Redis;
  db: PrismaClient;
  /** The plan the process booted with: planBudget(budgetInputFromConfig(config)). */
  plan: BudgetPlan;
  /** The process serving the page, e.g. `web.1/2`. */
  processName: string;
  /** The autoscaler's status for its slot on the page (default: none wired yet). */
  autoscalerStatus?: () => Promise<object | null>;
  now?: () => Date;
}

export type SegmentKind = LiveKind | 'used' | 'reserved' | 'free';

export interface BarSegment {
  kind: SegmentKind;
  label: string;
  count: number;
}

export interface Bar {
  limit: number;
  segments: BarSegment[];
  /** Connections past the limit (0 when within it). */
  overBy: number;
  /** One sentence for screen readers and tooltips. */
  summary: string;
}

export interface RoleComparison {
  role: BudgetRole;
  note: string;
  planned: number;
  /** Live connections counted against this role; null when the server would not say. */
  live: number | null;
}

export interface ResourceStatus {
  plan: ResourceBudget;
  comparison: RoleComparison[];
  bars: { planned: Bar; live: Part<{ bar: Bar }> };
}

export interface StatusReport {
  processName: string;
  generatedAt: string;
  plan: Pick<BudgetPlan, 'fits' | 'problems' | 'maxWorkerDynos' | 'limitedBy' | 'workerDynos' | 'input'>;
  redis: ResourceStatus;
  postgres: ResourceStatus;
  live: LiveConnections;
  warnings: string[];
  /** The autoscaler's slot: unavailable until one is wired in. */
  autoscaler: Part<{ status: object | null }>;
}

const LABELS: Record<SegmentKind, string> = {
  web: 'web',
  worker: 'worker',
  other: 'other (reserve in use)',
  used: 'in use',
  reserved: 'reserved',
  free: 'free',
};

function bar(limit: number, used: BarSegment[], reserved: number): Bar {
  const inUse = used.reduce((sum, s) => sum + s.count, 0);
  const reservedFree = Math.max(0, Math.min(reserved, limit - inUse));
  const free = Math.max(0, limit - inUse - reservedFree);
  const overBy = Math.max(0, inUse - limit);
  const segments = [...used, { kind: 'reserved' as const, label: LABELS.reserved, count: reservedFree }, { kind: 'free' as const, label: LABELS.free, count: free }];
  const parts = segments.filter((s) => s.count > 0).map((s) => `${s.count} ${s.label}`);
  const summary = `${parts.join(', ') || 'nothing'} of ${limit}${overBy > 0 ? `: over by ${overBy}` : ''}`;
  return { limit, segments, overBy, summary };
}

/** The plan as a bar: web and worker as planned, the reserve, the headroom. */
export function plannedBar(budget: ResourceBudget): Bar {
  const [web, worker, reserved] = budget.rows;
  return bar(budget.limit, [
    { kind: 'web', label: LABELS.web, count: web?.connections ?? 0 },
    { kind: 'worker', label: LABELS.worker, count: worker?.connections ?? 0 },
  ], reserved?.connections ?? 0);
}

/**
 * The live connections as a bar against the same limit. Connections that are neither
 * web nor worker (a console, a migration, an observer) spend the reserve, so the
 * reserve's free part shrinks by them.
 */
export function liveBar(budget: ResourceBudget, live: { byKind: Record<LiveKind, number> } | { total: number }): Bar {
  const reserved = budget.rows.find((r) => r.role === 'reserved')?.connections ?? 0;
  if ('byKind' in live) {
    const { web, worker, other } = live.byKind;
    return bar(budget.limit, [
      { kind: 'web', label: LABELS.web, count: web },
      { kind: 'worker', label: LABELS.worker, count: worker },
      { kind: 'other', label: LABELS.other, count: other },
    ], Math.max(0, reserved - other));
  }
  return bar(budget.limit, [{ kind: 'used', label: LABELS.used, count: live.total }], reserved);
}

function compare(budget: ResourceBudget, byKind: Record<LiveKind, number> | null): RoleComparison[] {
  const liveFor: Record<BudgetRole, LiveKind> = { web: 'web', worker: 'worker', reserved: 'other' };
  return budget.rows.map((row) => ({ role: row.role, note: row.note, planned: row.connections, live: byKind ? byKind[liveFor[row.role]] : null }));
}

function warningsFor(plan: BudgetPlan, live: LiveConnections): string[] {
  const out = [...plan.problems];
  const { clients, info, maxClients } = live.redis;
  const redisUsed = clients.available ? clients.total : info.available ? info.connectedClients : null;
  if (redisUsed !== null && redisUsed > plan.redis.limit) {
    out.push(`Redis: ${redisUsed} connections are open but the plan allows ${plan.redis.limit} (REDIS_MAX_CONNECTIONS).`);
  }
  if (clients.available) {
    for (const role of ['web', 'worker'] as const) {
      const planned = plan.redis.rows.find((r) => r.role === role)?.connections ?? 0;
      if (clients.byKind[role] > planned) {
        out.push(`Redis: ${clients.byKind[role]} ${role} connections are open but the plan counts ${planned}: is WEB_DYNOS right, or is a process over its allotment?`);
      }
    }
  }
  if (maxClients.available && maxClients.value < plan.redis.limit) {
    out.push(`Redis allows ${maxClients.value} clients but the plan assumes ${plan.redis.limit}: set REDIS_MAX_CONNECTIONS=${maxClients.value}.`);
  }
  if (info.available && info.rejectedConnections > 0) {
    out.push(`Redis has refused ${info.rejectedConnections} connection(s) since it started ("max number of clients reached").`);
  }
  if (live.postgres.available && live.postgres.total > plan.postgres.limit) {
    out.push(`Postgres: ${live.postgres.total} connections are open but the plan allows ${plan.postgres.limit} (DATABASE_MAX_CONNECTIONS).`);
  }
  return out;
}

function resourceStatus(budget: ResourceBudget, live: Part<{ byKind: Record<LiveKind, number> }>, fallbackTotal: number | null, why: string): ResourceStatus {
  const liveShape = live.available ? { byKind: live.byKind } : fallbackTotal !== null ? { total: fallbackTotal } : null;
  return {
    plan: budget,
    comparison: compare(budget, live.available ? live.byKind : null),
    bars: {
      planned: plannedBar(budget),
      live: liveShape ? { available: true, bar: liveBar(budget, liveShape) } : { available: false, reason: why },
    },
  };
}

async function autoscalerSlot(read: StatusDeps['autoscalerStatus']): Promise<Part<{ status: object | null }>> {
  if (!read) return { available: false, reason: 'no autoscaler is wired into this process yet' };
  try {
    return { available: true, status: await read() };
  } catch (err) {
    return { available: false, reason: redactText(err instanceof Error ? err.message : String(err)) };
  }
}

export async function buildStatusReport(deps: StatusDeps): Promise<StatusReport> {
  const { plan } = deps;
  const [live, autoscaler] = await Promise.all([readLiveConnections({ redis: deps.redis, db: deps.db }), autoscalerSlot(deps.autoscalerStatus)]);
  const { clients, info } = live.redis;
  const redisWhy = clients.available ? '' : info.available ? '' : `${clients.reason}; ${info.reason}`;
  return {
    processName: deps.processName,
    generatedAt: (deps.now?.() ?? new Date()).toISOString(),
    plan: { fits: plan.fits, problems: plan.problems, maxWorkerDynos: plan.maxWorkerDynos, limitedBy: plan.limitedBy, workerDynos: plan.workerDynos, input: plan.input },
    redis: resourceStatus(plan.redis, clients, info.available ? info.connectedClients : null, redisWhy),
    postgres: resourceStatus(plan.postgres, live.postgres, null, live.postgres.available ? '' : live.postgres.reason),
    live,
    warnings: warningsFor(plan, live),
    autoscaler,
  };
}

export function statusRouter(deps: StatusDeps): Router {
  const router = Router();
  router.get('/status.json', async (_req, res) => {
    const report = await buildStatusReport(deps);
    res.set('Cache-Control', 'no-store');
    res.json(report);
  });
  router.get('/status', async (_req, res) => {
    const report = await buildStatusReport(deps);
    res.set('Cache-Control', 'no-store');
    res.render('system-status', { report, title: 'System status' });
  });
  return router;
}
