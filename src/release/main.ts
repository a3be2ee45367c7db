// The Procfile's `release` process: apply pending migrations, then exit.
// Heroku runs it after each build and before the new release's dynos start; a
// non-zero exit stops the deploy, so a failed migration never meets new code.
import { loadReleaseConfig } from '../config.js';
import { redactText } from '../redact.js';
import { migrate } from '../db/migrate.js';

async function main(): Promise<void> {
  const config = loadReleaseConfig();
  await migrate({ databaseUrl: config.databaseUrl, log: (line) => console.log(line) });
}

main().catch((err: unknown) => {
  console.error(`release: ${redactText(err instanceof Error ? err.message : String(err))}`);
  process.exit(1);
});
