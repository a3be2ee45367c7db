// Applies pending Prisma Migrate folders (prisma/migrations/<name>/migration.sql)
// without Prisma's schema engine, and records each in `_prisma_migrations` exactly as
// `prisma migrate deploy` does: same table, same columns, sha256 checksum of the
// script, started_at/finished_at, applied_steps_count = 1. So `prisma migrate
// status` and `deploy` agree with it wherever the engine can be had.
//
// 1. take Prisma's advisory lock (the same key), so two releases never interleave;
// 2. create `_prisma_migrations` if missing;
// 3. refuse to go on if a migration failed earlier and was not resolved (like P3009),
//    or if an applied migration's file changed (checksum mismatch);
// 4. apply each pending folder in name order, in a transaction, and record it;
//    a failure is recorded with its logs and stops the run.
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { MIGRATIONS_DIR } from '../paths.js';

/** Prisma Migrate's advisory lock key (`pg_advisory_lock(72707369)`). */
const PRISMA_ADVISORY_LOCK = 72707369;

export const DEFAULT_MIGRATIONS_DIR = MIGRATIONS_DIR;

export class MigrationError extends Error {
  readonly code = 'nanoscale:migration';
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

export interface Migration {
  name: string;
  script: string;
  checksum: string;
}

export function checksum(script: string): string {
  return createHash('sha256').update(script, 'utf8').digest('hex');
}

export async function readMigrations(dir = DEFAULT_MIGRATIONS_DIR): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  return Promise.all(
    names.map(async (name) => {
      const script = await readFile(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, script, checksum: checksum(script) };
    }),
  );
}

const CREATE_TABLE = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

interface AppliedRow {
  id: string;
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
}

export async function migrate(options: {
  databaseUrl: string;
  dir?: string;
  log?: (line: string) => void;
}): Promise<MigrateResult> {
  const log = options.log ?? (() => {});
  const migrations = await readMigrations(options.dir);
  const client = new pg.Client({ connectionString: options.databaseUrl, application_name: 'nanoscale:release' });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [PRISMA_ADVISORY_LOCK]);
    await client.query(CREATE_TABLE);
    const { rows } = await client.query<AppliedRow>(
      'SELECT id, migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY started_at',
    );
    const live = rows.filter((r) => r.rolled_back_at === null);
    const failed = live.find((r) => r.finished_at === null);
    if (failed) {
      throw new MigrationError(
        `migration ${failed.migration_name} failed earlier and is not resolved: fix the database, then mark it ` +
          `with \`prisma migrate resolve --rolled-back ${failed.migration_name}\` (or delete its _prisma_migrations row)`,
      );
    }
    const done = new Map(live.map((r) => [r.migration_name, r]));
    for (const m of migrations) {
      const row = done.get(m.name);
      if (row && row.checksum !== m.checksum) {
        throw new MigrationError(
          `migration ${m.name} was changed after it was applied (checksum ${row.checksum} in the database, ${m.checksum} on disk): ` +
            'add a new migration instead of editing an applied one',
        );
      }
    }
    const pending = migrations.filter((m) => !done.has(m.name));
    for (const m of pending) {
      const id = randomUUID();
      await client.query(
        'INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count) VALUES ($1, $2, $3, now(), 0)',
        [id, m.checksum, m.name],
      );
      try {
        await client.query('BEGIN');
        await client.query(m.script);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        const message = err instanceof Error ? err.message : String(err);
        await client.query('UPDATE "_prisma_migrations" SET logs = $2 WHERE id = $1', [id, message]);
        throw new MigrationError(`migration ${m.name} failed: ${message}`);
      }
      await client.query(
        'UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1',
        [id],
      );
      log(`migrate: applied ${m.name}`);
    }
    if (pending.length === 0) log(`migrate: database is up to date (${migrations.length} migration(s))`);
    return { applied: pending.map((m) => m.name), alreadyApplied: [...done.keys()] };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [PRISMA_ADVISORY_LOCK]).catch(() => {});
    await client.end();
  }
}
