// The connection budget, as a pure function: from the formation (web dynos × processes,
// worker dynos) and what each process costs, sum the Redis and Postgres connections,
// compare them with each plan's limit, and find how many worker dynos fit. The boot
// checks, the autoscaler's ceiling and `npm run budget` all read this one model; it
// does no I/O and reads no environment, so its tests are plain tables.
import { REDIS_CONNECTIONS } from './costs.js';

export type Resource = 'redis' | 'postgres';
export type BudgetRole = 'web' | 'worker' | 'reserved';

export interface BudgetInput {
  redisMaxConnections: number;
  redisReservedConnections: number;
  webDynos: number;
  /** Web processes per dyno (the cluster's fixed pool). */
  webConcurrency: number;
  /** Jobs one worker process runs at once. It costs no extra connection (BullMQ shares them). */
  workerConcurrency: number;
  /** Default REDIS_CONNECTIONS.webProcess (1). */
  redisConnectionsPerWebProcess?: number;
  /** Default REDIS_CONNECTIONS.webPrimary (0): the cluster primary only forks. */
  redisConnectionsPerWebPrimary?: number;
  /** Default REDIS_CONNECTIONS.workerProcess (2). */
  redisConnectionsPerWorkerProcess?: number;
  databaseMaxConnections: number;
  /** Default 1: room for a `heroku pg:psql` console or the release phase's migrations. */
  databaseReservedConnections?: number;
  /** pg pool size of one web process. */
  webDatabasePoolSize: number;
  /** pg pool size of one worker process. */
  workerDatabasePoolSize: number;
  /** The worker formation being checked. Default: as many as fit (the ceiling). */
  workerDynos?: number;
  /** Default true: a budget with no room for one worker dyno is refused, since jobs would never run. */
  workerRequired?: boolean;
}

export interface BudgetRow {
  role: BudgetRole;
  count: number;
  costEach: number;
  connections: number;
  note: string;
}

export interface ResourceBudget {
  rows: BudgetRow[];
  total: number;
  limit: number;
  /** limit − total; negative when over. */
  headroom: number;
  fits: boolean;
  maxWorkerDynos: number;
}

export interface BudgetPlan {
  input: Required<BudgetInput>;
  redis: ResourceBudget;
  postgres: ResourceBudget;
  /** The autoscaler's ceiling: the fewest worker dynos either resource allows. */
  maxWorkerDynos: number;
  limitedBy: Resource;
  workerDynos: number;
  /** True when the formation fits both limits and nothing was refused. */
  fits: boolean;
  /** Human messages naming the variable to change; empty when the plan is accepted. */
  problems: string[];
}

export class BudgetInputError extends Error {
  readonly code = 'nanoscale:budget-input';
  constructor(field: string, value: unknown) {
    super(`budget input ${field} must be a whole number ≥ 0, got ${JSON.stringify(value)}`);
    this.name = 'BudgetInputError';
  }
}

/** What each resource calls its variables, so problems name what to change. */
const NAMES = {
  redis: {
    label: 'Redis',
    limit: 'REDIS_MAX_CONNECTIONS',
    reserved: 'REDIS_RESERVED_CONNECTIONS',
    webKnobs: ['WEB_CONCURRENCY', 'WEB_DYNOS'],
    // BullMQ's worker cost is fixed by the library, not a setting.
    workerKnobs: [],
    reservedNote: 'consoles, release',
  },
  postgres: {
    label: 'Postgres',
    limit: 'DATABASE_MAX_CONNECTIONS',
    reserved: 'the database reserve',
    webKnobs: ['WEB_DATABASE_POOL_SIZE', 'WEB_CONCURRENCY', 'WEB_DYNOS'],
    workerKnobs: ['WORKER_DATABASE_POOL_SIZE'],
    reservedNote: 'console, release',
  },
} as const;

const oneOf = (names: readonly string[]) =>
  names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

type ResolvedInput = Omit<Required<BudgetInput>, 'workerDynos'>;

function withDefaults(input: BudgetInput): ResolvedInput {
  const { workerDynos, ...rest } = input;
  const full = {
    redisConnectionsPerWebProcess: REDIS_CONNECTIONS.webProcess,
    redisConnectionsPerWebPrimary: REDIS_CONNECTIONS.webPrimary,
    redisConnectionsPerWorkerProcess: REDIS_CONNECTIONS.workerProcess,
    databaseReservedConnections: 1,
    workerRequired: true,
    ...rest,
  };
  const counts = Object.entries({ ...full, ...(workerDynos === undefined ? {} : { workerDynos }) });
  for (const [field, value] of counts) {
    if (field === 'workerRequired') continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new BudgetInputError(field, value);
  }
  // A worker that costs nothing would make the ceiling infinite: that is a wrong cost, not a plan.
  for (const field of ['redisConnectionsPerWorkerProcess', 'workerDatabasePoolSize'] as const) {
    if (full[field] < 1) throw new BudgetInputError(field, full[field]);
  }
  return full;
}

interface ResourceTerms {
  limit: number;
  reserved: number;
  /** Connections of one web dyno (all its processes plus the primary). */
  perWebDyno: number;
  perWebProcess: number;
  perWorker: number;
}

function resourceBudget(resource: Resource, input: ResolvedInput, terms: ResourceTerms, workerDynos: number): ResourceBudget {
  const web = input.webDynos * terms.perWebDyno;
  const primary = terms.perWebDyno - input.webConcurrency * terms.perWebProcess;
  const rows: BudgetRow[] = [
    {
      role: 'web',
      count: input.webDynos * input.webConcurrency,
      costEach: terms.perWebProcess,
      connections: web,
      note: `${plural(input.webDynos, 'dyno', 'dynos')} × ${plural(input.webConcurrency, 'process', 'processes')}` +
        (primary > 0 ? ` (+ ${primary} per primary)` : ''),
    },
    { role: 'worker', count: workerDynos, costEach: terms.perWorker, connections: workerDynos * terms.perWorker, note: plural(workerDynos, 'dyno', 'dynos') },
    { role: 'reserved', count: terms.reserved, costEach: 1, connections: terms.reserved, note: NAMES[resource].reservedNote },
  ];
  const total = rows.reduce((sum, row) => sum + row.connections, 0);
  return {
    rows,
    total,
    limit: terms.limit,
    headroom: terms.limit - total,
    fits: total <= terms.limit,
    maxWorkerDynos: Math.max(0, Math.floor((terms.limit - web - terms.reserved) / terms.perWorker)),
  };
}

/** Why a resource refuses the plan, as sentences that name the variable to change. */
function resourceProblems(resource: Resource, budget: ResourceBudget, workerRequired: boolean): string[] {
  const { label, limit: limitVar, reserved: reservedVar, webKnobs, workerKnobs } = NAMES[resource];
  const [web, worker, reserved] = budget.rows as [BudgetRow, BudgetRow, BudgetRow];
  const biggerPlan = `raise ${limitVar} to a bigger plan`;
  const are = (n: number) => (n === 1 ? 'is' : 'are');
  if (reserved.connections > budget.limit) {
    return [`${reserved.connections} ${label} connections are reserved but the plan allows only ${budget.limit}. ` +
      `Lower ${reservedVar}, or ${biggerPlan}.`];
  }
  const usedBeforeWorkers = `web needs ${web.connections} of ${budget.limit} ${label} connections and ${reserved.connections} ${are(reserved.connections)} reserved`;
  if (web.connections + reserved.connections > budget.limit) {
    return [`${usedBeforeWorkers}: over the limit before any worker dyno. Lower ${oneOf(webKnobs)}, or ${biggerPlan}.`];
  }
  if (workerRequired && budget.maxWorkerDynos < 1) {
    return [`${usedBeforeWorkers}: no worker dyno fits (one needs ${worker.costEach}). ` +
      `Lower ${oneOf([...webKnobs, ...workerKnobs])}, or ${biggerPlan}.`];
  }
  if (worker.count > budget.maxWorkerDynos) {
    const free = budget.limit - web.connections - reserved.connections;
    return [`${plural(worker.count, 'worker dyno needs', 'worker dynos need')} ${worker.connections} ${label} connections ` +
      `but only ${free} ${are(free)} free after web (${web.connections}) and reserved (${reserved.connections}): ` +
      `at most ${plural(budget.maxWorkerDynos, 'worker dyno fits', 'worker dynos fit')}. ` +
      `Scale worker down to ${budget.maxWorkerDynos}, or ${biggerPlan}.`];
  }
  return [];
}

export function planBudget(rawInput: BudgetInput): BudgetPlan {
  const input = withDefaults(rawInput);
  const redisTerms: ResourceTerms = {
    limit: input.redisMaxConnections,
    reserved: input.redisReservedConnections,
    perWebProcess: input.redisConnectionsPerWebProcess,
    perWebDyno: input.webConcurrency * input.redisConnectionsPerWebProcess + input.redisConnectionsPerWebPrimary,
    perWorker: input.redisConnectionsPerWorkerProcess,
  };
  const postgresTerms: ResourceTerms = {
    limit: input.databaseMaxConnections,
    reserved: input.databaseReservedConnections,
    perWebProcess: input.webDatabasePoolSize,
    // The cluster primary opens no pg pool: only its workers serve requests.
    perWebDyno: input.webConcurrency * input.webDatabasePoolSize,
    perWorker: input.workerDatabasePoolSize,
  };
  // Ceilings do not depend on the worker formation, so compute them first to default it.
  const ceilings = {
    redis: resourceBudget('redis', input, redisTerms, 0).maxWorkerDynos,
    postgres: resourceBudget('postgres', input, postgresTerms, 0).maxWorkerDynos,
  };
  // On a tie Redis is named: it is the plan this app is sized for.
  const limitedBy: Resource = ceilings.postgres < ceilings.redis ? 'postgres' : 'redis';
  const maxWorkerDynos = ceilings[limitedBy];
  const workerDynos = rawInput.workerDynos ?? maxWorkerDynos;
  const resolved = { ...input, workerDynos };
  const redis = resourceBudget('redis', resolved, redisTerms, workerDynos);
  const postgres = resourceBudget('postgres', resolved, postgresTerms, workerDynos);
  const problems = [
    ...resourceProblems('redis', redis, input.workerRequired),
    ...resourceProblems('postgres', postgres, input.workerRequired),
  ];
  return { input: resolved, redis, postgres, maxWorkerDynos, limitedBy, workerDynos, fits: redis.fits && postgres.fits && problems.length === 0, problems };
}

/** A plain-text table, one line per role, for `npm run budget` and boot logs. */
export function formatBudgetTable(plan: BudgetPlan): string {
  const sections = (['redis', 'postgres'] as const).map((resource) => {
    const budget = plan[resource];
    const lines = budget.rows.map((row) => ({
      label: row.role.padEnd(10),
      expression: row.role === 'reserved' ? row.note : `${row.note} × ${row.costEach}`,
      connections: row.connections,
    }));
    return { resource, budget, lines };
  });
  const all = sections.flatMap((s) => s.lines);
  const expressionWidth = Math.max(...all.map((l) => l.expression.length));
  const numberWidth = Math.max(2, ...all.map((l) => String(l.connections).length));
  const out: string[] = [];
  for (const { resource, budget, lines } of sections) {
    out.push(`${NAMES[resource].label} connections (room for ${plural(budget.maxWorkerDynos, 'worker dyno', 'worker dynos')})`);
    for (const l of lines) {
      out.push(`${l.label}${l.expression.padEnd(expressionWidth)}   = ${String(l.connections).padStart(numberWidth)}`);
    }
    const over = budget.fits ? '' : `, over by ${-budget.headroom}`;
    out.push(`total ${budget.total} / ${budget.limit} (headroom ${budget.headroom}${over})`, '');
  }
  out.push(`worker dynos that fit: ${plan.maxWorkerDynos} (${NAMES[plan.limitedBy].label})`);
  return out.join('\n');
}

/** The budget fields of loadConfig() (nested under `budget`) or of loadBudgetConfig() (flat). */
export interface BudgetConfigFields {
  redisMaxConnections: number;
  redisReservedConnections: number;
  webDynos: number;
  databaseMaxConnections: number;
}
export interface ProcessConfigFields {
  webConcurrency: number;
  workerConcurrency: number;
  webDatabasePoolSize: number;
  workerDatabasePoolSize: number;
}
export type BudgetConfig = ProcessConfigFields & (BudgetConfigFields | { budget: BudgetConfigFields });

export function budgetInputFromConfig(config: BudgetConfig, workerDynos?: number): BudgetInput {
  const budget = 'budget' in config ? config.budget : config;
  return {
    redisMaxConnections: budget.redisMaxConnections,
    redisReservedConnections: budget.redisReservedConnections,
    webDynos: budget.webDynos,
    databaseMaxConnections: budget.databaseMaxConnections,
    webConcurrency: config.webConcurrency,
    workerConcurrency: config.workerConcurrency,
    webDatabasePoolSize: config.webDatabasePoolSize,
    workerDatabasePoolSize: config.workerDatabasePoolSize,
    ...(workerDynos === undefined ? {} : { workerDynos }),
  };
}
