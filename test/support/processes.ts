// Starts the Procfile's commands (from dist/, as on a dyno) as child processes for
// tests, collects their output, and stops them like Heroku (SIGTERM, then SIGKILL).
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface TestProcess {
  child: ChildProcess;
  output: string[];
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

export function startProcess(script: 'web/main.js' | 'worker/main.js' | 'release/main.js' | string, env: Record<string, string>): TestProcess {
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', script)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const listeners = new Set<(line: string) => void>();
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        output.push(line);
        for (const l of listeners) l(line);
      }
    });
  }
  let signalledAt = Date.now();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - signalledAt }));
  });
  return {
    child,
    output,
    exited,
    waitForLine(pattern, timeoutMs = 30_000) {
      const found = output.find((l) => pattern.test(l));
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(listener);
          reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; output:\n${output.slice(-30).join('\n')}`));
        }, timeoutMs);
        const listener = (line: string) => {
          if (!pattern.test(line)) return;
          clearTimeout(timer);
          listeners.delete(listener);
          resolve(line);
        };
        listeners.add(listener);
        child.once('exit', () => {
          if (!listeners.has(listener)) return;
          clearTimeout(timer);
          listeners.delete(listener);
          reject(new Error(`process exited before a line matched ${pattern}; output:\n${output.slice(-30).join('\n')}`));
        });
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        signalledAt = Date.now();
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        const result = await exited;
        clearTimeout(timer);
        return result;
      }
      return exited;
    },
  };
}

/**
 * A small formation from dist/: one web dyno (`web.1`, WEB_CONCURRENCY=2 unless
 * `env` says otherwise) on a free port and one worker (`worker.1`), resolved once
 * every cluster worker listens and the worker is ready.
 */
export async function startFormation(env: Record<string, string>, port: number): Promise<{ web: TestProcess; worker: TestProcess; base: string }> {
  const webConcurrency = Number(env.WEB_CONCURRENCY ?? 2);
  const web = startProcess('web/main.js', { WEB_CONCURRENCY: String(webConcurrency), ...env, DYNO: 'web.1', PORT: String(port) });
  const worker = startProcess('worker/main.js', { ...env, DYNO: 'worker.1' });
  const deadline = Date.now() + 30_000;
  while (web.output.filter((l) => l.includes('web: listening')).length < webConcurrency) {
    if (Date.now() > deadline || web.child.exitCode !== null) throw new Error(`web did not start:\n${web.output.slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await worker.waitForLine(/worker: ready/);
  return { web, worker, base: `http://127.0.0.1:${port}` };
}
