// A private redis-server for `npm start` and tests: a free loopback port, nothing
// kept on disk (like the smallest hosted plans), and `--maxclients` set to the
// budget's limit so the Nano plan's 10 connections are felt locally.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort } from './free-port.js';

export class RedisServerMissingError extends Error {
  readonly code = 'nanoscale:redis-server-missing';
  constructor() {
    super(
      'redis-server was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install redis-server`; ' +
        'macOS: `brew install redis`), or set REDIS_URL to a Redis you already run.',
    );
    this.name = 'RedisServerMissingError';
  }
}

export interface LocalRedis {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** The first executable `redis-server` on PATH, or null. */
export function redisServerBinary(searchPath = process.env.PATH ?? ''): string | null {
  for (const dir of searchPath.split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'redis-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

export interface RedisServerOptions {
  /** Default 10: the Nano plan. */
  maxClients?: number;
  port?: number;
  /** More redis-server arguments (tests: `--requirepass`, `--rename-command`). */
  extraArgs?: string[];
  onLog?: (line: string) => void;
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<LocalRedis> {
  const binary = redisServerBinary();
  if (!binary) throw new RedisServerMissingError();
  const port = options.port ?? (await freePort());
  const child = spawn(
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxclients', String(options.maxClients ?? 10), '--daemonize', 'no', '--loglevel', 'warning', ...(options.extraArgs ?? [])],
    // Its own process group: a Ctrl-C in the terminal must not stop Redis before
    // the processes that use it have drained; we stop it last.
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  for (const stream of [child.stdout, child.stderr]) {
    stream?.on('data', (d: Buffer) => d.toString().split('\n').filter(Boolean).forEach((line) => options.onLog?.(line)));
  }
  await waitForPort(port, child);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: child,
    stop: () => stopChild(child),
  };
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode} before it was ready`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server did not open port ${port} within ${timeoutMs} ms`);
}

export function stopChild(child: ChildProcess, killAfterMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
