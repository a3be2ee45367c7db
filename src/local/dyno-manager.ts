// The local dyno manager behind `npm start`: the platform the autoscaler talks to when
// it runs on one machine. Lifecycle:
// 1. startDynoManager() serves the formation subset of the Platform API
//    (formation-api.ts) on a loopback port, for one app and one token;
// 2. `web` stays at 1: npm start runs it, so a PATCH to another quantity answers 422;
//    every other process type starts at 0;
// 3. a change of quantity starts processes `<type>.1`…`<type>.N` (DYNO set, logs
//    prefixed) or stops the highest-numbered ones like Heroku: SIGTERM, SIGKILL after
//    30 s. Scaling up does not wait for a dyno still draining: a new one starts beside
//    it, as a new dyno does on Heroku;
// 4. a process that exits without being told to is restarted after a pause (1 s,
//    doubling while it keeps crashing, up to 60 s), as Heroku restarts crashed dynos;
// 5. stop() stops every process, then the server.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import path from 'node:path';
import { ROOT_DIR } from '../paths.js';
import { createFormationApi, createFormationStore } from './formation-api.js';
import { freePort } from './free-port.js';
import { formatLogLine, runProcess, type RunningProcess } from './process-runner.js';

export interface ProcessTypeSpec {
  /** The script `node --enable-source-maps` runs, relative to the project folder (e.g. `dist/worker/main.js`) or absolute. */
  script: string;
  /** The environment of each of its processes (DYNO is set per process). */
  env: NodeJS.ProcessEnv;
}

export interface DynoExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the dyno manager stopped it (scale-down or stop()); false when it exited on its own. */
  stopped: boolean;
}

export interface DynoManagerOptions {
  /** The app name the API answers for, e.g. `nanoscale-local`. */
  appName: string;
  /** The API token callers must present (HEROKU_API_KEY). */
  token: string;
  /** The scalable process types (not `web`), each starting at quantity 0. */
  processes: Record<string, ProcessTypeSpec>;
  /** Where log lines go: each process's lines prefixed with its name, the manager's with `local`. */
  print: (line: string) => void;
  /** Called after each process exits, e.g. for tests. */
  onExit?: (dyno: string, exit: DynoExit) => void;
  /** Default: a free loopback port. */
  port?: number;
  /** Grace between SIGTERM and SIGKILL. Default 30_000, Heroku's. */
  stopGraceMs?: number;
  /** Pause before restarting a process that exited on its own, doubled per crash in a row. Default 1_000. */
  restartDelayMs?: number;
  /** Longest pause between restarts. Default 60_000. */
  maxRestartDelayMs?: number;
}

export interface DynoStatus {
  /** e.g. `worker.1`. */
  name: string;
  pid: number | undefined;
  state: 'up' | 'stopping' | 'crashed';
}

export interface DynoManager {
  /** The API's base URL (HEROKU_API_URL for the app's processes). */
  url: string;
  token: string;
  appName: string;
  /** The processes it runs, like `heroku ps`. */
  ps(): DynoStatus[];
  /** Stops every process (SIGTERM, SIGKILL after the grace), then the server. */
  stop(): Promise<void>;
}

/** One numbered slot of a process type: the process in it now, or a restart pending. */
interface Slot {
  process?: RunningProcess;
  restartTimer?: NodeJS.Timeout;
  crashes: number;
  startedAt: number;
}

/** A process that ran this long before exiting is no longer crashing in a loop. */
const HEALTHY_AFTER_MS = 60_000;

export async function startDynoManager(options: DynoManagerOptions): Promise<DynoManager> {
  const stopGraceMs = options.stopGraceMs ?? 30_000;
  const restartDelayMs = options.restartDelayMs ?? 1_000;
  const maxRestartDelayMs = options.maxRestartDelayMs ?? 60_000;
  if ('web' in options.processes) throw new Error('the dyno manager does not run `web`: npm start runs it');
  const say = (line: string) => options.print(formatLogLine('local', `dyno manager: ${line}`));

  const types = Object.keys(options.processes);
  const slots = new Map<string, Map<number, Slot>>(types.map((t) => [t, new Map()]));
  const draining = new Set<RunningProcess>();
  let stopping = false;

  const store = createFormationStore({
    token: options.token,
    appName: options.appName,
    formation: { web: 1, ...Object.fromEntries(types.map((t) => [t, 0])) },
    commands: {
      web: 'node --enable-source-maps dist/web/main.js',
      ...Object.fromEntries(types.map((t) => [t, `node --enable-source-maps ${options.processes[t]!.script}`])),
    },
    // Like Heroku's pool, so a long `npm start` never runs dry.
    refillPerMinute: 75,
  });
  const quantity = (type: string) => store.formation.get(type)?.quantity ?? 0;

  function start(type: string, n: number, slot: Slot): void {
    const spec = options.processes[type]!;
    const name = `${type}.${n}`;
    const script = path.resolve(ROOT_DIR, spec.script);
    const p = runProcess({
      name,
      command: process.execPath,
      args: ['--enable-source-maps', script],
      env: { ...spec.env, DYNO: name },
      print: options.print,
    });
    slot.process = p;
    slot.startedAt = Date.now();
    p.child.once('error', (err) => say(`${name} could not start: ${err.message}`));
    void p.exited.then((exit) => exited(type, n, p, exit));
  }

  function exited(type: string, n: number, p: RunningProcess, exit: { code: number | null; signal: NodeJS.Signals | null }): void {
    const name = `${type}.${n}`;
    const how = exit.signal ?? `code ${exit.code}`;
    const stopped = draining.delete(p);
    const slot = slots.get(type)!.get(n);
    if (slot?.process === p) slot.process = undefined;
    try {
      options.onExit?.(name, { ...exit, stopped });
    } catch (err) {
      say(`onExit for ${name} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (stopped || stopping || !slot || n > quantity(type)) {
      say(`${name} exited (${how})`);
      if (slot && !slot.process && !slot.restartTimer) slots.get(type)!.delete(n);
      return;
    }
    // It exited without being told to: Heroku restarts a crashed dyno, with a cool-off.
    slot.crashes = Date.now() - slot.startedAt > HEALTHY_AFTER_MS ? 1 : slot.crashes + 1;
    const delay = Math.min(maxRestartDelayMs, restartDelayMs * 2 ** (slot.crashes - 1));
    say(`${name} exited (${how}) on its own; restarting it in ${delay / 1000} s`);
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (stopping || n > quantity(type) || slot.process) return;
      say(`restarting ${name}`);
      start(type, n, slot);
    }, delay);
  }

  function stopSlot(type: string, n: number, slot: Slot): Promise<void> {
    clearTimeout(slot.restartTimer);
    slot.restartTimer = undefined;
    const p = slot.process;
    slots.get(type)!.delete(n);
    if (!p) return Promise.resolve();
    slot.process = undefined;
    draining.add(p);
    return p.stop(stopGraceMs);
  }

  /** Makes the running processes of `type` match its quantity. */
  function scale(type: string, from: number, to: number): void {
    if (stopping) return;
    const mine = slots.get(type);
    if (!mine) return; // web: not ours
    const starting: string[] = [];
    for (let n = 1; n <= to; n++) {
      if (mine.has(n)) continue;
      const slot: Slot = { crashes: 0, startedAt: Date.now() };
      mine.set(n, slot);
      starting.push(`${type}.${n}`);
      start(type, n, slot);
    }
    // Highest-numbered first, like Heroku.
    const extra = [...mine.keys()].filter((n) => n > to).sort((a, b) => b - a);
    const stoppingNames = extra.map((n) => `${type}.${n}`);
    const what = [starting.length ? `starting ${starting.join(', ')}` : '', stoppingNames.length ? `stopping ${stoppingNames.join(', ')}` : '']
      .filter(Boolean)
      .join('; ');
    say(`${type} ${from} -> ${to}${what ? `, ${what}` : ''}`);
    for (const n of extra) void stopSlot(type, n, mine.get(n)!);
  }

  const known = new Map(types.map((t) => [t, 0]));
  const api = createFormationApi(store, {
    fixedTypes: { web: 'web runs as one process under npm start: the local dyno manager scales only ' + types.join(', ') + '.' },
    onChange: (type, to) => {
      const from = known.get(type) ?? 0;
      known.set(type, to);
      try {
        scale(type, from, to);
      } catch (err) {
        say(`scaling ${type} to ${to} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    },
  });

  const port = options.port ?? (await freePort());
  const server: Server = await new Promise((resolve, reject) => {
    const s = api.listen(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    token: options.token,
    appName: options.appName,
    ps() {
      const list: DynoStatus[] = [];
      for (const [type, mine] of slots) {
        for (const [n, slot] of [...mine].sort((a, b) => a[0] - b[0])) {
          list.push({ name: `${type}.${n}`, pid: slot.process?.child.pid, state: slot.process ? 'up' : 'crashed' });
        }
      }
      for (const p of draining) list.push({ name: p.name, pid: p.child.pid, state: 'stopping' });
      return list;
    },
    async stop() {
      if (stopping) return;
      stopping = true;
      // Draining ones already had their SIGTERM (and a SIGKILL timer): just wait for them.
      const stops: Array<Promise<unknown>> = [...draining].map((p) => p.exited);
      for (const [type, mine] of slots) {
        for (const n of [...mine.keys()].sort((a, b) => b - a)) stops.push(stopSlot(type, n, mine.get(n)!));
      }
      await Promise.all(stops);
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}
