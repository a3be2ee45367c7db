// The machine's Redis and Postgres for tests, with a fresh database and a fresh
// queue name per test file, removed afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { createDb } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const PG_ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A new, empty database; `migrated` applies prisma/migrations to it. */
export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const name = uniqueName('nanoscale_test').replace(/-/g, '_');
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  if (options.migrated ?? true) await migrate({ databaseUrl: url.toString() });
  return {
    name,
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export function testDb(url: string) {
  return createDb({ url, poolSize: 4, processName: 'test' });
}

export interface ClientInfo {
  name: string;
  addr: string;
  cmd: string;
}

/** `CLIENT LIST`, parsed. */
export async function clientList(redisUrl = REDIS_URL): Promise<ClientInfo[]> {
  const r = new Redis(redisUrl, { lazyConnect: true, connectionName: 'nanoscale-test-observer' });
  await r.connect();
  try {
    const text = (await r.client('LIST')) as string;
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => Object.fromEntries(line.split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])))
      .map((f) => ({ name: f.name ?? '', addr: f.addr ?? '', cmd: f.cmd ?? '' }));
  } finally {
    r.disconnect();
  }
}

export async function waitFor<T>(check: () => Promise<T | undefined | null | false>, options: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
  }
  throw new Error(`timed out waiting for ${options.what ?? 'condition'}${last ? `: ${String(last)}` : ''}`);
}
