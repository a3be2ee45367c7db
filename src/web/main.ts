// The Procfile's `web` process: a node:cluster primary with a fixed pool of
// WEB_CONCURRENCY workers, each running the Express app (server.ts).
import cluster from 'node:cluster';
import { checkBudget } from '../budget/boot-check.js';
import { loadConfig } from '../config.js';
import { exitOnBootError } from '../lifecycle.js';
import { createLogger } from '../log.js';
import { runPrimary } from './cluster.js';
import { runServer } from './server.js';

async function main(): Promise<void> {
  const config = loadConfig();
  if (cluster.isPrimary) {
    const log = createLogger({ process: config.dyno, level: config.logLevel });
    const budget = checkBudget(config);
    if (budget.lowered) {
      log.warn(`budget: WEB_CONCURRENCY ${budget.lowered.from} (set by the buildpack) lowered to ${budget.lowered.to} to fit ${config.budget.redisMaxConnections} Redis connections`);
    }
    runPrimary({ workers: budget.webConcurrency, log });
  } else {
    await runServer(config, `${config.dyno}/${cluster.worker?.id ?? 0}`);
  }
}

main().catch((err: unknown) => exitOnBootError(err, 'web'));
