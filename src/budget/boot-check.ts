// Every process checks the budget before it opens a connection: a formation that
// cannot fit even one worker dyno on the plan refuses to start, printing the table
// and which variable to change, instead of failing later with "max number of clients".
import type { Config } from '../config.js';
import { budgetInputFromConfig, formatBudgetTable, planBudget, type BudgetPlan } from './plan.js';

export class BudgetExceededError extends Error {
  readonly code = 'nanoscale:budget-exceeded';
  constructor(readonly plan: BudgetPlan) {
    super(`the formation does not fit the connection budget:\n\n${formatBudgetTable(plan)}\n\n${plan.problems.map((p) => `- ${p}`).join('\n')}`);
    this.name = 'BudgetExceededError';
  }
}

export interface CheckedBudget {
  plan: BudgetPlan;
  /** WEB_CONCURRENCY to run with: the configured one, or a buildpack's value lowered to fit. */
  webConcurrency: number;
  /** Set when a buildpack's WEB_CONCURRENCY was lowered to fit the budget. */
  lowered?: { from: number; to: number };
}

/**
 * A WEB_CONCURRENCY you set is a promise: it fits or the process refuses to start.
 * One the Node.js buildpack computed from dyno memory (WEB_CONCURRENCY_SET_BY) is a
 * suggestion: it is lowered to the largest value that still leaves room for a worker.
 */
export function checkBudget(config: Config): CheckedBudget {
  const plan = planBudget(budgetInputFromConfig(config));
  if (plan.problems.length === 0) return { plan, webConcurrency: config.webConcurrency };
  if (config.webConcurrencySource === 'buildpack') {
    for (let n = config.webConcurrency - 1; n >= 1; n--) {
      const lower = planBudget(budgetInputFromConfig({ ...config, webConcurrency: n }));
      if (lower.problems.length === 0) return { plan: lower, webConcurrency: n, lowered: { from: config.webConcurrency, to: n } };
    }
  }
  throw new BudgetExceededError(plan);
}
