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
    checkBudget(config);
    runPrimary({ workers: config.webConcurrency, log: createLogger({ process: config.dyno, level: config.logLevel }) });
  } else {
    await runServer(config, `${config.dyno}/${cluster.worker?.id ?? 0}`);
  }
}

main().catch((err: unknown) => exitOnBootError(err, 'web'));
