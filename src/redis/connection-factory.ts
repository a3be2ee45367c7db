// The only place an ioredis connection is made. Lifecycle:
// 1. each process creates one factory with its name (`web.1/2`, `worker.1`) and its
//    allotment from the budget (src/budget/costs.ts);
// 2. `open(role)` makes a named connection (`CLIENT SETNAME nanoscale:<process>:<role>`),
//    counts it, and throws ConnectionBudgetError past the allotment: one more client
//    than budgeted is a programming error, never a silent extra connection;
// 3. the shared client's `duplicate()` goes through the factory too, so the blocking
//    connection BullMQ's Worker makes from it is named, counted and budgeted;
// 4. `closeAll()` on shutdown.
import { Redis, type RedisOptions } from 'ioredis';
import { redactUrl } from '../redact.js';

export const CONNECTION_NAME_PREFIX = 'nanoscale';

/**
 * `fail-fast` (web): commands fail at once while disconnected, so a request never
 * hangs on Redis. `patient` (worker): commands wait for the reconnect, as BullMQ's
 * Worker requires (`maxRetriesPerRequest: null`).
 */
export type ConnectionProfile = 'fail-fast' | 'patient';

export interface ConnectionFactoryOptions {
  url: string;
  /** Process label used in connection names, e.g. `web.1/2` or `worker.1`. */
  processName: string;
  /** How many connections this process may hold open at once. */
  allotment: number;
  profile: ConnectionProfile;
  /** Verify the server's TLS certificate for rediss:// (default false: Heroku's are self-signed). */
  tlsRejectUnauthorized?: boolean;
  /** Called for connection errors (ioredis reconnects by itself; this only reports). */
  onError?: (role: string, err: Error) => void;
}

export class ConnectionBudgetError extends Error {
  readonly code = 'nanoscale:connection-budget';
  constructor(processName: string, allotment: number, role: string, open: string[]) {
    super(
      `${processName} may hold ${allotment} Redis connection(s) but tried to open another for "${role}" ` +
        `(open: ${open.join(', ') || 'none'}). Reuse the shared client instead of opening one.`,
    );
    this.name = 'ConnectionBudgetError';
  }
}

/** `nanoscale:worker.1:shared`; Redis connection names may not contain spaces. */
export function connectionName(processName: string, role: string): string {
  return `${CONNECTION_NAME_PREFIX}:${processName}:${role}`.replace(/\s+/g, '_');
}

export class ConnectionFactory {
  readonly #open = new Map<Redis, string>();
  constructor(readonly options: ConnectionFactoryOptions) {
    if (!options.url) throw new Error('ConnectionFactory requires a url');
  }

  get openCount(): number {
    return this.#open.size;
  }

  get openRoles(): string[] {
    return [...this.#open.values()];
  }

  /**
   * Opens a counted connection. `name` overrides the connection name (BullMQ names
   * its blocking connection `bull:<queue>:w:<worker name>` so `getWorkers()` finds it).
   */
  open(role: string, extra: { name?: string; blocking?: boolean } = {}): Redis {
    const { processName, allotment } = this.options;
    if (this.#open.size >= allotment) {
      throw new ConnectionBudgetError(processName, allotment, role, this.openRoles);
    }
    const client = new Redis(this.options.url, this.#redisOptions(extra.name ?? connectionName(processName, role), extra.blocking));
    this.#open.set(client, role);
    client.on('error', (err: Error) => this.options.onError?.(role, err));
    client.once('end', () => this.#open.delete(client));
    client.duplicate = (override?: Partial<RedisOptions>) =>
      this.open(`${role}-duplicate`, { name: override?.connectionName, blocking: true });
    return client;
  }

  async closeAll(): Promise<void> {
    await Promise.all(
      [...this.#open.keys()].map(async (client) => {
        try {
          await client.quit();
        } catch {
          client.disconnect();
        }
        this.#open.delete(client);
      }),
    );
  }

  #redisOptions(name: string, blocking = false): RedisOptions {
    const failFast = this.options.profile === 'fail-fast' && !blocking;
    const tls = this.options.url.startsWith('rediss://')
      ? { tls: { rejectUnauthorized: this.options.tlsRejectUnauthorized ?? false } }
      : {};
    return {
      connectionName: name,
      ...tls,
      // Fail fast on the web: an enqueue that cannot reach Redis leaves the row
      // `queued` for the reconciler instead of holding the request open.
      enableOfflineQueue: !failFast,
      maxRetriesPerRequest: failFast ? 1 : null,
      connectTimeout: 5_000,
      // Reconnect with a capped back-off: never a tight loop against a server that is
      // down or full ("max number of clients reached").
      retryStrategy: (attempt) => Math.min(200 * 2 ** Math.min(attempt, 6), 5_000),
    };
  }

  describe(): string {
    return `${this.options.processName} → ${redactUrl(this.options.url)} (${this.#open.size}/${this.options.allotment} open)`;
  }
}

/** Resolves once the client is connected (true) or after `timeoutMs` (false): never throws. */
export function whenReady(client: Redis, timeoutMs = 5_000): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once('ready', onReady);
  });
}
