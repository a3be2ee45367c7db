// Runs the Procfile's processes as children, like foreman: each line a child prints
// is forwarded with its name as a prefix (JSON log lines are shown as plain text),
// and stopping sends SIGTERM, then SIGKILL after a grace period, as Heroku does.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { stopChild } from './redis-server.js';

export interface RunningProcess {
  name: string;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(graceMs?: number): Promise<void>;
}

/** `{"level":"info","process":"web.1/2","msg":"…"}` → `web.1/2 | info  …`; other lines as they are. */
export function formatLogLine(name: string, line: string): string {
  const prefix = (who: string) => `${who.padEnd(12)} | `;
  if (!line.startsWith('{')) return prefix(name) + line;
  try {
    const entry = JSON.parse(line) as { level?: string; process?: string; msg?: string; err?: { message?: string } };
    const detail = entry.err?.message && !entry.msg?.includes(entry.err.message) ? ` (${entry.err.message})` : '';
    return `${prefix(entry.process ?? name)}${(entry.level ?? '').padEnd(5)} ${entry.msg ?? line}${detail}`;
  } catch {
    return prefix(name) + line;
  }
}

export function runProcess(options: {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  print: (line: string) => void;
}): RunningProcess {
  const child = spawn(options.command, options.args, { env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream }).on('line', (line) => {
      options.print(formatLogLine(options.name, line));
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { name: options.name, child, exited, stop: (graceMs = 30_000) => stopChild(child, graceMs) };
}
