// Shared process plumbing for every main.ts: config errors stop the process at boot
// with their message, SIGTERM/SIGINT run one orderly stop, and a hard deadline makes
// sure the process is gone before Heroku's SIGKILL (30 s after SIGTERM).
import { ConfigError } from './config.js';
import type { Logger } from './log.js';
import { redactText } from './redact.js';

export function exitOnBootError(err: unknown, what: string): never {
  const message = err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err);
  process.stderr.write(`${what}: cannot start: ${redactText(message)}\n`);
  process.exit(1);
}

/** Runs `stop` once on the first SIGTERM/SIGINT; exits 0 when done, 1 past the deadline. */
export function onShutdownSignal(log: Logger, stop: (signal: string) => Promise<void>, deadlineMs = 25_000): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info(`shutdown: ${signal} received, stopping`);
    setTimeout(() => {
      log.error(`shutdown: still running ${deadlineMs} ms after ${signal}, exiting`);
      process.exit(1);
    }, deadlineMs).unref();
    stop(signal).then(
      () => {
        log.info('shutdown: done');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown: failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
