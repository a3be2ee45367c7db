// The live side of the connection budget, read for the status page. Lifecycle: one
// call per request, on the web process's EXISTING shared Redis client and Prisma
// pool (it never opens a connection of its own: that would cost one more than the
// budget gives the process):
// 1. `CLIENT LIST`, each connection attributed to a process and role from its name
//    (`nanoscale:<process>:<role>`, or BullMQ's `bull:<base64 queue>:w:nanoscale:<process>:<role>`);
// 2. `INFO clients` + `INFO stats` (connected, blocked, rejected) and `CONFIG GET maxclients`;
// 3. `pg_stat_activity` for this database, grouped by application_name.
// Managed providers may forbid CLIENT or CONFIG ("ERR unknown command", "NOPERM"):
// each part then answers `{ available: false, reason }` instead of failing the page.
import type { Redis } from 'ioredis';
import type { PrismaClient } from '../generated/prisma/client.js';
import { CONNECTION_NAME_PREFIX } from '../redis/connection-factory.js';
import { redactText } from '../redact.js';

/** What each live connection counts against in the plan; `other` spends the reserve. */
export type LiveKind = 'web' | 'worker' | 'other';

export type Part<T> = ({ available: true } & T) | { available: false; reason: string };

export interface RedisClientEntry {
  id: string;
  name: string;
  ageSeconds: number;
  idleSeconds: number;
  /** The last command it ran, e.g. `evalsha`, `bzpopmin`, `client|list`. */
  command: string;
}

export interface ConnectionOwner {
  process: string;
  role: string;
  kind: LiveKind;
  /** The queue a BullMQ-named connection serves, decoded from its base64 name. */
  queue?: string;
}

export interface RedisConnectionGroup extends ConnectionOwner {
  count: number;
  connections: RedisClientEntry[];
}

export interface RedisClientsPart {
  total: number;
  byKind: Record<LiveKind, number>;
  groups: RedisConnectionGroup[];
}

export interface RedisInfoPart {
  connectedClients: number;
  blockedClients: number | null;
  rejectedConnections: number;
  totalConnectionsReceived: number | null;
}

export interface MaxClientsPart {
  value: number;
  source: 'config' | 'info';
}

export interface PostgresGroup {
  application: string;
  process: string;
  kind: LiveKind;
  count: number;
  /** Connections by state (`active`, `idle`, …; `unknown` where the role may not see it). */
  states: Record<string, number>;
}

export interface PostgresPart {
  database: string;
  total: number;
  byKind: Record<LiveKind, number>;
  groups: PostgresGroup[];
}

export interface LiveConnections {
  readAt: string;
  redis: {
    clients: Part<RedisClientsPart>;
    info: Part<RedisInfoPart>;
    maxClients: Part<MaxClientsPart>;
  };
  postgres: Part<PostgresPart>;
}

export interface LiveDeps {
  /** The process's shared client. Used as is; nothing is opened. */
  redis: Redis;
  db: PrismaClient;
  /** Bound on each part, so a slow server never holds the page (default 2000). */
  timeoutMs?: number;
}

const OTHER: ConnectionOwner = { process: 'other', role: 'unnamed', kind: 'other' };
const BULL_NAME = /^bull:([A-Za-z0-9+/=]+):w:(.+)$/;

export function kindOfProcess(process: string): LiveKind {
  const type = /^(web|worker)(?=[./]|$)/.exec(process)?.[1];
  return type === 'web' || type === 'worker' ? type : 'other';
}

/** `nanoscale:<process>:<role>` → its parts, or null for any other name. */
function ownName(name: string): { process: string; role: string } | null {
  const prefix = `${CONNECTION_NAME_PREFIX}:`;
  if (!name.startsWith(prefix)) return null;
  const rest = name.slice(prefix.length);
  const colon = rest.indexOf(':');
  if (colon < 1 || colon === rest.length - 1) return null;
  return { process: rest.slice(0, colon), role: rest.slice(colon + 1) };
}

/** Who a Redis connection belongs to, from its name; anything unrecognised is other/unnamed. */
export function ownerOfConnection(name: string): ConnectionOwner {
  const own = ownName(name);
  if (own) return { ...own, kind: kindOfProcess(own.process) };
  const bull = BULL_NAME.exec(name);
  const inner = bull ? ownName(bull[2]!) : null;
  if (bull && inner) {
    return { ...inner, kind: kindOfProcess(inner.process), queue: Buffer.from(bull[1]!, 'base64').toString('utf8') };
  }
  return OTHER;
}

/** `CLIENT LIST` text → one record per line. Values split at the FIRST '=' (base64 names end in '='). */
export function parseClientList(text: string): Array<Record<string, string>> {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) =>
      Object.fromEntries(
        line.split(' ').filter(Boolean).map((field) => {
          const eq = field.indexOf('=');
          return eq < 0 ? [field, ''] : [field.slice(0, eq), field.slice(eq + 1)];
        }),
      ),
    );
}

/** `INFO` text → its `key:value` fields (section headers and blanks skipped). */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) out[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return out;
}

const emptyKinds = (): Record<LiveKind, number> => ({ web: 0, worker: 0, other: 0 });
const toInt = (v: string | undefined) => (v === undefined || v === '' || Number.isNaN(Number(v)) ? null : Number(v));

/** Groups parsed CLIENT LIST entries by process and role, sorted web, worker, other. */
export function groupRedisClients(entries: Array<Record<string, string>>): RedisClientsPart {
  const groups = new Map<string, RedisConnectionGroup>();
  const byKind = emptyKinds();
  for (const e of entries) {
    const name = e.name ?? '';
    const owner = ownerOfConnection(name);
    const key = `${owner.process}\u0000${owner.role}\u0000${owner.queue ?? ''}`;
    const group = groups.get(key) ?? { ...owner, count: 0, connections: [] };
    group.count += 1;
    group.connections.push({ id: e.id ?? '', name, ageSeconds: toInt(e.age) ?? 0, idleSeconds: toInt(e.idle) ?? 0, command: e.cmd ?? '' });
    groups.set(key, group);
    byKind[owner.kind] += 1;
  }
  return { total: entries.length, byKind, groups: [...groups.values()].sort(byOwner) };
}

const KIND_ORDER: Record<LiveKind, number> = { web: 0, worker: 1, other: 2 };
function byOwner(a: { kind: LiveKind; process: string; role?: string }, b: { kind: LiveKind; process: string; role?: string }): number {
  return KIND_ORDER[a.kind] - KIND_ORDER[b.kind] || a.process.localeCompare(b.process, 'en', { numeric: true }) || (a.role ?? '').localeCompare(b.role ?? '');
}

/** Groups pg_stat_activity rows (application_name, state, count) by application. */
export function groupPostgresActivity(database: string, rows: Array<{ application: string; state: string; count: number }>): PostgresPart {
  const groups = new Map<string, PostgresGroup>();
  const byKind = emptyKinds();
  let total = 0;
  for (const row of rows) {
    const own = row.application.startsWith(`${CONNECTION_NAME_PREFIX}:`) ? row.application.slice(CONNECTION_NAME_PREFIX.length + 1) : null;
    const process = own || (row.application ? 'other' : 'unnamed');
    const kind = own ? kindOfProcess(own) : 'other';
    const group = groups.get(row.application) ?? { application: row.application, process, kind, count: 0, states: {} };
    group.count += row.count;
    group.states[row.state] = (group.states[row.state] ?? 0) + row.count;
    groups.set(row.application, group);
    byKind[kind] += row.count;
    total += row.count;
  }
  return { database, total, byKind, groups: [...groups.values()].sort(byOwner) };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function part<T>(what: string, ms: number, read: () => Promise<T>): Promise<Part<T>> {
  try {
    return { available: true, ...(await withTimeout(read(), ms, what)) };
  } catch (err) {
    // Provider messages ("ERR unknown command 'CLIENT'", "NOPERM …") say why; URLs never reach the page.
    const message = err instanceof Error ? err.message : String(err);
    return { available: false, reason: `${what}: ${redactText(message).split('\n')[0]!.slice(0, 300)}` };
  }
}

export async function readLiveConnections(deps: LiveDeps): Promise<LiveConnections> {
  const { redis, db } = deps;
  const ms = deps.timeoutMs ?? 2_000;
  const [clients, info, config, postgres] = await Promise.all([
    part('CLIENT LIST', ms, async () => groupRedisClients(parseClientList(String(await redis.client('LIST'))))),
    part('INFO', ms, async () => {
      const fields = parseInfo(`${await redis.info('clients')}\n${await redis.info('stats')}`);
      const connectedClients = toInt(fields.connected_clients);
      if (connectedClients === null) throw new Error('INFO clients has no connected_clients');
      return {
        fields,
        info: {
          connectedClients,
          blockedClients: toInt(fields.blocked_clients),
          rejectedConnections: toInt(fields.rejected_connections) ?? 0,
          totalConnectionsReceived: toInt(fields.total_connections_received),
        } satisfies RedisInfoPart,
      };
    }),
    part('CONFIG GET maxclients', ms, async () => {
      const reply = (await redis.config('GET', 'maxclients')) as unknown;
      const value = Array.isArray(reply) ? toInt(String(reply[1])) : null;
      if (value === null) throw new Error('no maxclients in the reply');
      return { value };
    }),
    part('pg_stat_activity', ms, async () => {
      const rows = await db.$queryRaw<Array<{ database: string; application: string; state: string; count: number }>>`
        SELECT current_database() AS database,
               coalesce(application_name, '') AS application,
               coalesce(state, 'unknown') AS state,
               count(*)::int AS count
          FROM pg_stat_activity
         WHERE datname = current_database()
         GROUP BY application_name, state`;
      const database = rows[0]?.database ?? '';
      return groupPostgresActivity(database, rows);
    }),
  ]);

  // Redis ≥ 7 also reports maxclients in INFO clients: the fallback where CONFIG is forbidden.
  const infoMax = info.available ? toInt(info.fields.maxclients) : null;
  const maxClients: Part<MaxClientsPart> = config.available
    ? { available: true, value: config.value, source: 'config' }
    : infoMax !== null
      ? { available: true, value: infoMax, source: 'info' }
      : config;

  return {
    readAt: new Date().toISOString(),
    redis: {
      clients,
      info: info.available ? { available: true, ...info.info } : info,
      maxClients,
    },
    postgres,
  };
}
