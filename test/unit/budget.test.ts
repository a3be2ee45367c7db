// The connection budget model (pure, table-driven) and `npm run budget` run as a
// child process with a clean environment: no service URL may be needed to plan.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  BudgetInputError,
  budgetInputFromConfig,
  formatBudgetTable,
  planBudget,
  type BudgetInput,
  type BudgetPlan,
} from '../../src/budget/plan.js';

/** The config defaults: the seed's Nano formation. */
const DEFAULTS: BudgetInput = {
  redisMaxConnections: 10,
  redisReservedConnections: 2,
  webDynos: 2,
  webConcurrency: 3,
  workerConcurrency: 2,
  databaseMaxConnections: 20,
  webDatabasePoolSize: 2,
  workerDatabasePoolSize: 3,
};

const connections = (plan: BudgetPlan, resource: 'redis' | 'postgres') =>
  Object.fromEntries(plan[resource].rows.map((row) => [row.role, row.connections]));

interface Case {
  name: string;
  input: Partial<BudgetInput>;
  redis: { web: number; worker: number; reserved: number; total: number; max: number };
  postgres?: { web: number; worker: number; reserved: number; total: number; max: number };
  max: number;
  limitedBy: 'redis' | 'postgres';
  fits: boolean;
  /** Each problem must mention these, in order of the problems; [] means accepted. */
  problems: string[][];
}

const cases: Case[] = [
  {
    name: 'defaults → the seed: 6 + 2 + 2 = 10 of 10, one worker dyno',
    input: {},
    redis: { web: 6, worker: 2, reserved: 2, total: 10, max: 1 },
    postgres: { web: 12, worker: 3, reserved: 1, total: 16, max: 2 },
    max: 1, limitedBy: 'redis', fits: true, problems: [],
  },
  {
    name: 'WEB_DYNOS=1 → two worker dynos fit',
    input: { webDynos: 1 },
    redis: { web: 3, worker: 4, reserved: 2, total: 9, max: 2 },
    postgres: { web: 6, worker: 6, reserved: 1, total: 13, max: 4 },
    max: 2, limitedBy: 'redis', fits: true, problems: [],
  },
  {
    name: 'WEB_CONCURRENCY=4 → web takes 8 of 10, refused naming WEB_CONCURRENCY',
    input: { webConcurrency: 4 },
    redis: { web: 8, worker: 0, reserved: 2, total: 10, max: 0 },
    max: 0, limitedBy: 'redis', fits: false,
    problems: [['web needs 8 of 10 Redis connections', '2 are reserved', 'no worker dyno fits', 'WEB_CONCURRENCY', 'REDIS_MAX_CONNECTIONS']],
  },
  {
    name: 'zero web dynos → the whole plan for workers',
    input: { webDynos: 0 },
    redis: { web: 0, worker: 8, reserved: 2, total: 10, max: 4 },
    postgres: { web: 0, worker: 12, reserved: 1, total: 13, max: 6 },
    max: 4, limitedBy: 'redis', fits: true, problems: [],
  },
  {
    name: 'huge limits (10000) → thousands of worker dynos, Postgres the tighter',
    input: { redisMaxConnections: 10000, databaseMaxConnections: 10000 },
    redis: { web: 6, worker: 6658, reserved: 2, total: 6666, max: 4996 },
    postgres: { web: 12, worker: 9987, reserved: 1, total: 10000, max: 3329 },
    max: 3329, limitedBy: 'postgres', fits: true, problems: [],
  },
  {
    name: 'Key-Value Store mini (20) → Redis allows 6, Postgres 2',
    input: { redisMaxConnections: 20 },
    redis: { web: 6, worker: 4, reserved: 2, total: 12, max: 6 },
    postgres: { web: 12, worker: 6, reserved: 1, total: 19, max: 2 },
    max: 2, limitedBy: 'postgres', fits: true, problems: [],
  },
  {
    name: 'DATABASE_MAX_CONNECTIONS=14 → Postgres leaves no worker dyno, refused naming it',
    input: { databaseMaxConnections: 14 },
    redis: { web: 6, worker: 0, reserved: 2, total: 8, max: 1 },
    postgres: { web: 12, worker: 0, reserved: 1, total: 13, max: 0 },
    max: 0, limitedBy: 'postgres', fits: false,
    problems: [['web needs 12 of 14 Postgres connections', 'no worker dyno fits (one needs 3)', 'WORKER_DATABASE_POOL_SIZE', 'DATABASE_MAX_CONNECTIONS']],
  },
  {
    name: 'workerDynos 3 above the ceiling → over both limits, refused twice',
    input: { workerDynos: 3 },
    redis: { web: 6, worker: 6, reserved: 2, total: 14, max: 1 },
    postgres: { web: 12, worker: 9, reserved: 1, total: 22, max: 2 },
    max: 1, limitedBy: 'redis', fits: false,
    problems: [['3 worker dynos need 6 Redis connections', 'at most 1 worker dyno fits', 'REDIS_MAX_CONNECTIONS'], ['at most 2 worker dynos fit', 'DATABASE_MAX_CONNECTIONS']],
  },
  {
    name: 'workerDynos 0 when no worker fits but none is required → accepted',
    input: { webConcurrency: 4, workerDynos: 0, workerRequired: false },
    redis: { web: 8, worker: 0, reserved: 2, total: 10, max: 0 },
    max: 0, limitedBy: 'redis', fits: true, problems: [],
  },
  {
    name: 'web alone over both limits, worker not required → still refused, once per resource',
    input: { webConcurrency: 5, workerRequired: false },
    redis: { web: 10, worker: 0, reserved: 2, total: 12, max: 0 },
    postgres: { web: 20, worker: 0, reserved: 1, total: 21, max: 0 },
    max: 0, limitedBy: 'redis', fits: false,
    problems: [
      ['web needs 10 of 10 Redis', 'over the limit before any worker dyno', 'WEB_CONCURRENCY or WEB_DYNOS'],
      ['web needs 20 of 20 Postgres', 'WEB_DATABASE_POOL_SIZE, WEB_CONCURRENCY or WEB_DYNOS'],
    ],
  },
  {
    name: 'reserved 12 > limit 10 → refused naming REDIS_RESERVED_CONNECTIONS',
    input: { redisReservedConnections: 12 },
    redis: { web: 6, worker: 0, reserved: 12, total: 18, max: 0 },
    max: 0, limitedBy: 'redis', fits: false,
    problems: [['12 Redis connections are reserved', 'allows only 10', 'REDIS_RESERVED_CONNECTIONS']],
  },
];

describe('planBudget', () => {
  it.each(cases)('$name', (c) => {
    const plan = planBudget({ ...DEFAULTS, ...c.input });
    expect(connections(plan, 'redis')).toEqual({ web: c.redis.web, worker: c.redis.worker, reserved: c.redis.reserved });
    expect(plan.redis.total).toBe(c.redis.total);
    expect(plan.redis.headroom).toBe(plan.redis.limit - c.redis.total);
    expect(plan.redis.maxWorkerDynos).toBe(c.redis.max);
    if (c.postgres) {
      expect(connections(plan, 'postgres')).toEqual({ web: c.postgres.web, worker: c.postgres.worker, reserved: c.postgres.reserved });
      expect(plan.postgres.total).toBe(c.postgres.total);
      expect(plan.postgres.maxWorkerDynos).toBe(c.postgres.max);
    }
    expect(plan.maxWorkerDynos).toBe(c.max);
    expect(plan.limitedBy).toBe(c.limitedBy);
    expect(plan.fits).toBe(c.fits);
    expect(plan.problems).toHaveLength(c.problems.length);
    c.problems.forEach((words, i) => {
      for (const word of words) expect(plan.problems[i]).toContain(word);
    });
  });

  it('defaults → rows carry count, cost each and a note', () => {
    const plan = planBudget(DEFAULTS);
    expect(plan.redis.rows).toEqual([
      { role: 'web', count: 6, costEach: 1, connections: 6, note: '2 dynos × 3 processes' },
      { role: 'worker', count: 1, costEach: 2, connections: 2, note: '1 dyno' },
      { role: 'reserved', count: 2, costEach: 1, connections: 2, note: 'consoles, release' },
    ]);
    expect(plan.redis).toMatchObject({ limit: 10, headroom: 0, fits: true });
    expect(plan.postgres).toMatchObject({ total: 16, limit: 20, headroom: 4, fits: true });
    expect(plan.workerDynos).toBe(1);
  });

  it('an input that is not a whole number ≥ 0 → BudgetInputError naming it', () => {
    expect(() => planBudget({ ...DEFAULTS, webDynos: -1 })).toThrow(BudgetInputError);
    expect(() => planBudget({ ...DEFAULTS, webConcurrency: 1.5 })).toThrow(/webConcurrency/);
    expect(() => planBudget({ ...DEFAULTS, workerDatabasePoolSize: 0 })).toThrow(/workerDatabasePoolSize/);
  });
});

describe('formatBudgetTable', () => {
  it('defaults → one aligned line per role, totals and the ceiling', () => {
    const lines = formatBudgetTable(planBudget(DEFAULTS)).split('\n');
    expect(lines).toContain('web       2 dynos × 3 processes × 1   =  6');
    expect(lines).toContain('worker    1 dyno × 2                  =  2');
    expect(lines).toContain('reserved  consoles, release           =  2');
    expect(lines).toContain('total 10 / 10 (headroom 0)');
    expect(lines).toContain('web       2 dynos × 3 processes × 2   = 12');
    expect(lines).toContain('total 16 / 20 (headroom 4)');
    expect(lines).toContain('worker dynos that fit: 1 (Redis)');
  });

  it('over the limit → the total line says by how much', () => {
    const table = formatBudgetTable(planBudget({ ...DEFAULTS, workerDynos: 3 }));
    expect(table).toContain('total 14 / 10 (headroom -4, over by 4)');
  });
});

describe('budgetInputFromConfig', () => {
  const processFields = { webConcurrency: 3, workerConcurrency: 2, webDatabasePoolSize: 2, workerDatabasePoolSize: 3 };
  const budgetFields = { redisMaxConnections: 10, redisReservedConnections: 2, webDynos: 2, databaseMaxConnections: 20 };

  it('loadConfig() shape (nested budget) → the same input as the flat shape', () => {
    expect(budgetInputFromConfig({ ...processFields, budget: budgetFields })).toEqual(DEFAULTS);
    expect(budgetInputFromConfig({ ...processFields, ...budgetFields })).toEqual(DEFAULTS);
    expect(budgetInputFromConfig({ ...processFields, ...budgetFields }, 0).workerDynos).toBe(0);
  });
});

describe('npm run budget (src/budget/main.ts)', () => {
  const cwd = fileURLToPath(new URL('../..', import.meta.url));
  /** Run the CLI with only PATH and HOME: no REDIS_URL, DATABASE_URL or SMTP_URL. */
  const cli = (args: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        'npx', ['tsx', 'src/budget/main.ts', ...args],
        { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, timeout: 30_000 },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? -1) : 0, stdout, stderr }),
      );
    });

  it('defaults → exit 0, 10 / 10 and one worker dyno', async () => {
    const { code, stdout, stderr } = await cli([]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('total 10 / 10 (headroom 0)');
    expect(stdout).toContain('worker dynos that fit: 1 (Redis)');
  }, 30_000);

  it('WEB_CONCURRENCY=4 → exit 1 with a problem naming WEB_CONCURRENCY', async () => {
    const { code, stdout } = await cli([], { WEB_CONCURRENCY: '4' });
    expect(code).toBe(1);
    expect(stdout).toContain('OVER BUDGET');
    expect(stdout).toMatch(/no worker dyno fits.*WEB_CONCURRENCY/);
  }, 30_000);

  it('--json → a plan that parses, flags overriding the environment', async () => {
    const { code, stdout } = await cli(['--json', '--web-dynos', '1'], { WEB_DYNOS: '2' });
    expect(code).toBe(0);
    const plan = JSON.parse(stdout) as BudgetPlan;
    expect(plan.maxWorkerDynos).toBe(2);
    expect(plan.redis.total).toBe(9);
  }, 30_000);

  it('a bad flag value → exit 2 naming the flag', async () => {
    const { code, stderr } = await cli(['--web-concurrency', '0']);
    expect(code).toBe(2);
    expect(stderr).toContain('--web-concurrency');
    expect(stderr).toContain('WEB_CONCURRENCY');
  }, 30_000);
});
