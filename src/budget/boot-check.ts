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

export function checkBudget(config: Config): BudgetPlan {
  const plan = planBudget(budgetInputFromConfig(config));
  if (plan.problems.length > 0) throw new BudgetExceededError(plan);
  return plan;
}
