// One JSON line per event on stdout (Heroku's log router and `npm start` both read
// stdout). Every line carries the process name; secrets are redacted by path and
// any URL credential in a message is masked.
import { pino, type Logger } from 'pino';
import { redactText } from './redact.js';

export type { Logger };

export function createLogger(options: { process: string; level?: string }): Logger {
  return pino({
    level: options.level ?? 'info',
    base: { process: options.process },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: {
      paths: ['*.password', '*.apiKey', '*.token', 'headers.authorization', 'headers.cookie', '*.url'],
      censor: '***',
    },
    hooks: {
      logMethod(args, method) {
        method.apply(
          this,
          args.map((a) => (typeof a === 'string' ? redactText(a) : a)) as Parameters<typeof method>,
        );
      },
    },
    serializers: {
      err: (err: unknown) => {
        const e = pino.stdSerializers.err(err as Error);
        return { ...e, message: redactText(e.message ?? ''), stack: redactText(e.stack ?? '') };
      },
    },
  });
}

/** One error reporter for background loops, timers and child exits: log, never throw. */
export function reportError(log: Logger, where: string) {
  return (err: unknown) => log.error({ err }, `${where}: ${err instanceof Error ? err.message : String(err)}`);
}
