// `npm run budget`: print the connection budget for this configuration, and fail when
// the formation does not fit. Flags override the variables of the same name, so a
// plan change can be checked before `heroku config:set`. Needs no service URL.
// Exit codes: 0 fits, 1 over budget (table and problems on stdout), 2 bad flags/config.
import { parseArgs } from 'node:util';
import { ConfigError, childEnv, loadBudgetConfig } from '../config.js';
import { BudgetInputError, budgetInputFromConfig, formatBudgetTable, planBudget } from './plan.js';

/** Each flag and the variable it overrides. */
const FLAGS = {
  'redis-max-connections': 'REDIS_MAX_CONNECTIONS',
  'redis-reserved': 'REDIS_RESERVED_CONNECTIONS',
  'web-dynos': 'WEB_DYNOS',
  'web-concurrency': 'WEB_CONCURRENCY',
  'worker-concurrency': 'WORKER_CONCURRENCY',
  'database-max-connections': 'DATABASE_MAX_CONNECTIONS',
  'web-pool': 'WEB_DATABASE_POOL_SIZE',
  'worker-pool': 'WORKER_DATABASE_POOL_SIZE',
} as const;
type Flag = keyof typeof FLAGS;

const HELP = `usage: npm run budget -- [flags]

Sums the Redis and Postgres connections of the formation, compares them with each
plan's limit and prints how many worker dynos fit (the autoscaler's ceiling).

${Object.entries(FLAGS)
  .map(([flag, variable]) => `  --${`${flag} N`.padEnd(28)}overrides ${variable}`)
  .join('\n')}
  --${'worker-dynos N'.padEnd(28)}check this worker formation (default: as many as fit)
  --${'json'.padEnd(28)}print the plan as JSON
  --${'help'.padEnd(28)}this text

exit status: 0 fits, 1 over budget, 2 bad flags or configuration`;

class UsageError extends Error {
  readonly code = 'nanoscale:usage';
  constructor(message: string, readonly fromFlags = true) {
    super(message);
  }
}

function parseFlags(argv: string[]) {
  const options = {
    ...Object.fromEntries(Object.keys(FLAGS).map((flag) => [flag, { type: 'string' as const }])),
    'worker-dynos': { type: 'string' as const },
    json: { type: 'boolean' as const },
    help: { type: 'boolean' as const },
  };
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as
      Partial<Record<Flag | 'worker-dynos', string>> & { json?: boolean; help?: boolean };
  } catch (err) {
    // parseArgs throws TypeError with codes like ERR_PARSE_ARGS_UNKNOWN_OPTION.
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

function wholeNumber(flag: string, raw: string): string {
  // Config treats an empty value as "use the default"; an empty flag is a typo, not that.
  if (!/^\d+$/.test(raw.trim())) throw new UsageError(`--${flag} must be a whole number ≥ 0, got ${JSON.stringify(raw)}`);
  return raw.trim();
}

function loadConfigNamingFlags(overrides: Record<string, string>) {
  try {
    return loadBudgetConfig(childEnv(overrides));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Name the flag when a flag, not the environment, supplied the bad value.
    const lines = err.problems.map((problem) => {
      const flag = Object.entries(FLAGS).find(([, variable]) => variable in overrides && problem.startsWith(`${variable}=`))?.[0];
      return `  - ${flag ? `--${flag}: ` : ''}${problem}`;
    });
    throw new UsageError(`invalid configuration:\n${lines.join('\n')}`, Object.keys(overrides).length > 0);
  }
}

function run(argv: string[]): number {
  const flags = parseFlags(argv);
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  const overrides: Record<string, string> = {};
  for (const [flag, variable] of Object.entries(FLAGS) as [Flag, string][]) {
    const raw = flags[flag];
    if (raw !== undefined) overrides[variable] = wholeNumber(flag, raw);
  }
  const workerDynosFlag = flags['worker-dynos'];
  const workerDynos = workerDynosFlag === undefined ? undefined : Number(wholeNumber('worker-dynos', workerDynosFlag));
  // Flags go through config's validation as the variables they stand for, so a bad
  // --web-concurrency gets the same range check and fix as a bad WEB_CONCURRENCY.
  // childEnv layers them over this process's environment (config owns process.env).
  const config = loadConfigNamingFlags(overrides);
  const plan = planBudget(budgetInputFromConfig(config, workerDynos));
  if (flags.json) {
    console.log(JSON.stringify(plan, null, 2));
  } else {
    console.log(formatBudgetTable(plan));
    if (plan.problems.length > 0) {
      console.log(`\nOVER BUDGET:\n${plan.problems.map((p) => `  - ${p}`).join('\n')}`);
    }
  }
  return plan.problems.length === 0 ? 0 : 1;
}

try {
  process.exitCode = run(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError) {
    console.error(`budget: ${err.message}${err.fromFlags ? '\nrun with --help for the flags' : ''}`);
  } else if (err instanceof BudgetInputError) {
    console.error(`budget: ${err.message}`);
  } else {
    throw err;
  }
  process.exitCode = 2;
}
