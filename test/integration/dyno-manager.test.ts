// The local dyno manager alone: its Platform API (formation subset) over a real
// socket, through heroku-client and fetch, and the real dist/worker/main.js processes
// it starts and stops to match the worker quantity (the machine's Redis, a fresh
// database and queue name, a mail catcher). The autoscaler is off in these workers:
// the test does the scaling.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDynoManager, type DynoExit, type DynoManager } from '../../src/local/dyno-manager.js';
import { startMailCatcher, type MailCatcher } from '../../src/local/mail-catcher.js';
import { createTestDatabase, REDIS_URL, uniqueName, waitFor, type TestDatabase } from '../support/services.js';

interface HerokuClient {
  get(path: string): Promise<unknown>;
  patch(path: string, options: { body: unknown }): Promise<unknown>;
}
const Heroku = createRequire(import.meta.url)('heroku-client') as new (options: { token: string; host: string }) => HerokuClient;

const ACCEPT = 'application/vnd.heroku+json; version=3';
const APP = 'nanoscale-dynos';

let database: TestDatabase;
let mail: MailCatcher;
let workerEnv: NodeJS.ProcessEnv;
beforeAll(async () => {
  database = await createTestDatabase();
  mail = await startMailCatcher();
  workerEnv = {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    REDIS_URL,
    DATABASE_URL: database.url,
    SMTP_URL: mail.url,
    QUEUE_NAME: uniqueName('dynos'),
    AUTOSCALER: 'off',
  };
});
afterAll(async () => {
  await mail?.close();
  await database?.drop();
});

interface Rig {
  manager: DynoManager;
  lines: string[];
  exits: Array<{ dyno: string } & DynoExit>;
  heroku: HerokuClient;
  /** Waits for a printed line matching `pattern` (from index `from`). */
  line(pattern: RegExp, timeoutMs?: number, from?: number): Promise<string>;
  api(method: string, path: string, options?: { body?: unknown; token?: string | null; accept?: string }): Promise<Response>;
}

const rigs: Rig[] = [];
afterEach(async () => {
  while (rigs.length > 0) await rigs.pop()!.manager.stop();
});

async function rig(options: { restartDelayMs?: number } = {}): Promise<Rig> {
  const lines: string[] = [];
  const exits: Rig['exits'] = [];
  const token = randomBytes(16).toString('hex');
  const manager = await startDynoManager({
    appName: APP,
    token,
    processes: { worker: { script: 'dist/worker/main.js', env: workerEnv } },
    print: (l) => lines.push(l),
    onExit: (dyno, exit) => exits.push({ dyno, ...exit }),
    restartDelayMs: options.restartDelayMs ?? 300,
  });
  const r: Rig = {
    manager,
    lines,
    exits,
    heroku: new Heroku({ token, host: manager.url }),
    line: (pattern, timeoutMs = 20_000, from = 0) =>
      waitFor(async () => lines.slice(from).find((l) => pattern.test(l)), { timeoutMs, what: `a line matching ${pattern}; got:\n${lines.slice(-20).join('\n')}` }),
    api: (method, path, o = {}) =>
      fetch(`${manager.url}${path}`, {
        method,
        headers: {
          Accept: o.accept ?? ACCEPT,
          'Content-Type': 'application/json',
          ...(o.token === null ? {} : { Authorization: `Bearer ${o.token ?? token}` }),
        },
        ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
      }),
  };
  rigs.push(r);
  return r;
}

const alive = (pid: number | undefined) => {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('dyno manager: the formation API', () => {
  it('no token or a wrong one → 401 unauthorized; no API version in Accept → 406; neither spends the rate limit', async () => {
    const r = await rig();
    const none = await r.api('GET', `/apps/${APP}/formation`, { token: null });
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({ id: 'unauthorized', message: 'Invalid credentials provided.' });
    expect(none.headers.get('ratelimit-remaining')).toBeNull();
    expect((await r.api('PATCH', `/apps/${APP}/formation/worker`, { token: 'wrong-token', body: { quantity: 1 } })).status).toBe(401);
    const json = await r.api('GET', `/apps/${APP}/formation`, { accept: 'application/json' });
    expect(json.status).toBe(406);
    expect(await json.json()).toMatchObject({ id: 'not_acceptable' });
    expect(r.manager.ps()).toEqual([]);
    const ok = await r.api('GET', `/apps/${APP}/formation/worker`);
    expect(ok.headers.get('ratelimit-remaining')).toBe('4499');
  });

  it('GET formation (heroku-client, Basic auth) → web 1 and worker 0 in the real shape; GET one type by name or id; unknown app/type → 404', async () => {
    const r = await rig();
    const list = (await r.heroku.get(`/apps/${APP}/formation`)) as Array<Record<string, unknown>>;
    expect(list.map((f) => [f.type, f.quantity])).toEqual([
      ['web', 1],
      ['worker', 0],
    ]);
    const worker = list[1]!;
    expect(worker).toEqual({
      app: { id: expect.stringMatching(/^[0-9a-f-]{36}$/), name: APP },
      command: 'node --enable-source-maps dist/worker/main.js',
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      dyno_size: { id: null, name: 'standard-1X' },
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      quantity: 0,
      size: 'standard-1X',
      type: 'worker',
      updated_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(await r.heroku.get(`/apps/${APP}/formation/${worker.id as string}`)).toEqual(worker);
    const noApp = await r.api('GET', '/apps/other-app/formation/worker');
    expect([noApp.status, await noApp.json()]).toEqual([404, { id: 'not_found', message: "Couldn't find that app.", resource: 'app' }]);
    const noType = await r.api('GET', `/apps/${APP}/formation/clock`);
    expect([noType.status, ((await noType.json()) as { resource: string }).resource]).toEqual([404, 'formation']);
  });

  it('PATCH web to 2 → 422 (npm start runs web), nothing started; PATCH a bad quantity → 422', async () => {
    const r = await rig();
    const web = await r.api('PATCH', `/apps/${APP}/formation/web`, { body: { quantity: 2 } });
    expect(web.status).toBe(422);
    expect(await web.json()).toMatchObject({ id: 'invalid_params', message: expect.stringContaining('scales only worker') });
    const batch = await r.api('PATCH', `/apps/${APP}/formation`, { body: { updates: [{ type: 'worker', quantity: 1 }, { type: 'web', quantity: 0 }] } });
    expect(batch.status).toBe(422); // all or nothing: the worker update is not applied either
    expect((await r.api('PATCH', `/apps/${APP}/formation/worker`, { body: { quantity: -1 } })).status).toBe(422);
    expect((await r.api('PATCH', `/apps/${APP}/formation/web`, { body: { quantity: 1 } })).status).toBe(200); // no change: allowed
    expect(((await r.heroku.get(`/apps/${APP}/formation/worker`)) as { quantity: number }).quantity).toBe(0);
    expect(r.manager.ps()).toEqual([]);
    expect(r.lines.filter((l) => l.includes('dyno manager:'))).toEqual([]);
  });
});

describe('dyno manager: worker processes', () => {
  it('PATCH worker 1 → a real worker.1 process starts; PATCH 0 → it gets SIGTERM and exits 0', async () => {
    const r = await rig();
    const scaled = (await r.heroku.patch(`/apps/${APP}/formation/worker`, { body: { quantity: 1 } })) as { quantity: number; type: string };
    expect(scaled).toMatchObject({ type: 'worker', quantity: 1 });
    await r.line(/^local\s+\| dyno manager: worker 0 -> 1, starting worker\.1$/);
    await r.line(/^worker\.1\s+\| info\s+worker: ready, queue=/);
    const [dyno] = r.manager.ps();
    expect(dyno).toMatchObject({ name: 'worker.1', state: 'up' });
    expect(alive(dyno!.pid)).toBe(true);

    // The same quantity again: no change, no second process.
    await r.heroku.patch(`/apps/${APP}/formation/worker`, { body: { quantity: 1 } });
    expect(r.manager.ps()).toHaveLength(1);

    await r.heroku.patch(`/apps/${APP}/formation/worker`, { body: { quantity: 0 } });
    await r.line(/dyno manager: worker 1 -> 0, stopping worker\.1$/);
    await r.line(/^worker\.1\s+\| info\s+shutdown: SIGTERM received/);
    await r.line(/^local\s+\| dyno manager: worker\.1 exited \(code 0\)$/);
    expect(r.exits).toEqual([{ dyno: 'worker.1', code: 0, signal: null, stopped: true }]);
    expect(alive(dyno!.pid)).toBe(false);
    expect(r.manager.ps()).toEqual([]);
  }, 40_000);

  it('batch PATCH worker 2 → worker.1 and worker.2; PATCH 1 → worker.2 (the highest) is stopped, worker.1 keeps running', async () => {
    const r = await rig();
    const res = await r.api('PATCH', `/apps/${APP}/formation`, { body: { updates: [{ type: 'worker', quantity: 2 }] } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as Array<{ type: string; quantity: number }>).map((f) => [f.type, f.quantity])).toEqual([['worker', 2]]);
    await r.line(/dyno manager: worker 0 -> 2, starting worker\.1, worker\.2$/);
    await r.line(/^worker\.1\s+\| info\s+worker: ready/);
    await r.line(/^worker\.2\s+\| info\s+worker: ready/);
    const [one, two] = r.manager.ps();
    expect([one?.name, two?.name]).toEqual(['worker.1', 'worker.2']);

    await r.heroku.patch(`/apps/${APP}/formation/worker`, { body: { quantity: 1 } });
    await r.line(/dyno manager: worker 2 -> 1, stopping worker\.2$/);
    await r.line(/dyno manager: worker\.2 exited \(code 0\)$/);
    expect(alive(two!.pid)).toBe(false);
    expect(alive(one!.pid)).toBe(true);
    expect(r.manager.ps()).toEqual([{ name: 'worker.1', pid: one!.pid, state: 'up' }]);
    expect(r.lines.some((l) => /worker\.1\s+\| info\s+shutdown:/.test(l))).toBe(false);
  }, 40_000);

  it('a worker that dies on its own → restarted under the same name after a pause; one stopped on purpose → not restarted', async () => {
    const r = await rig({ restartDelayMs: 300 });
    await r.heroku.patch(`/apps/${APP}/formation/worker`, { body: { quantity: 1 } });
    await r.line(/^worker\.1\s+\| info\s+worker: ready/);
    const first = r.manager.ps()[0]!.pid!;

    const from = r.lines.length;
    process.kill(first, 'SIGKILL');
    await r.line(/dyno manager: worker\.1 exited \(SIGKILL\) on its own; restarting it in 0\.3 s$/, 5_000, from);
    await r.line(/dyno manager: restarting worker\.1$/, 5_000, from);
    await r.line(/^worker\.1\s+\| info\s+worker: ready/, 20_000, from);
    const second = r.manager.ps()[0]!;
    expect(second).toMatchObject({ name: 'worker.1', state: 'up' });
    expect(second.pid).not.toBe(first);
    expect(r.exits).toEqual([{ dyno: 'worker.1', code: null, signal: 'SIGKILL', stopped: false }]);

    await r.heroku.patch(`/apps/${APP}/formation/worker`, { body: { quantity: 0 } });
    await r.line(/dyno manager: worker\.1 exited \(code 0\)$/, 20_000, from);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(r.manager.ps()).toEqual([]);
    expect(r.lines.filter((l) => l.includes('restarting worker.1'))).toHaveLength(1);
  }, 40_000);

  it('stop() → every worker gets SIGTERM and exits 0, then the API is closed', async () => {
    const r = await rig();
    await r.heroku.patch(`/apps/${APP}/formation/worker`, { body: { quantity: 2 } });
    await r.line(/^worker\.1\s+\| info\s+worker: ready/);
    await r.line(/^worker\.2\s+\| info\s+worker: ready/);
    const pids = r.manager.ps().map((d) => d.pid);
    await r.manager.stop();
    expect(r.exits.map((e) => [e.dyno, e.code, e.stopped]).sort()).toEqual([
      ['worker.1', 0, true],
      ['worker.2', 0, true],
    ]);
    expect(pids.map(alive)).toEqual([false, false]);
    await expect(fetch(`${r.manager.url}/apps/${APP}/formation`)).rejects.toThrow();
  }, 40_000);
});
