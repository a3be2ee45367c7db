// The release step: Prisma Migrate folders applied without Prisma's engine and
// recorded exactly as `prisma migrate deploy` records them.
import { mkdtemp, cp, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { checksum, migrate, readMigrations, MigrationError } from '../../src/db/migrate.js';
import { MIGRATIONS_DIR } from '../../src/paths.js';
import { createTestDatabase, testDb, type TestDatabase } from '../support/services.js';

const databases: TestDatabase[] = [];
async function freshDatabase() {
  const d = await createTestDatabase({ migrated: false });
  databases.push(d);
  return d;
}
afterEach(async () => {
  await Promise.all(databases.splice(0).map((d) => d.drop()));
});

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

describe('migrate', () => {
  it('fresh database → applies every migration and records it as Prisma Migrate does', async () => {
    const d = await freshDatabase();
    const onDisk = await readMigrations();
    expect(onDisk.length).toBeGreaterThan(0);

    const result = await migrate({ databaseUrl: d.url });
    expect(result.applied).toEqual(onDisk.map((m) => m.name));

    const columns = await query<{ column_name: string; data_type: string; is_nullable: string }>(
      d.url,
      `SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = '_prisma_migrations' ORDER BY ordinal_position`,
    );
    expect(columns.map((c) => [c.column_name, c.data_type, c.is_nullable])).toEqual([
      ['id', 'character varying', 'NO'],
      ['checksum', 'character varying', 'NO'],
      ['finished_at', 'timestamp with time zone', 'YES'],
      ['migration_name', 'character varying', 'NO'],
      ['logs', 'text', 'YES'],
      ['rolled_back_at', 'timestamp with time zone', 'YES'],
      ['started_at', 'timestamp with time zone', 'NO'],
      ['applied_steps_count', 'integer', 'NO'],
    ]);
    const rows = await query<{ migration_name: string; checksum: string; finished_at: Date | null; applied_steps_count: number; logs: string | null; id: string }>(
      d.url,
      'SELECT * FROM "_prisma_migrations" ORDER BY started_at',
    );
    expect(rows.map((r) => r.migration_name)).toEqual(onDisk.map((m) => m.name));
    for (const [i, row] of rows.entries()) {
      expect(row.checksum).toBe(onDisk[i]!.checksum);
      expect(row.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.applied_steps_count).toBe(1);
      expect(row.logs).toBeNull();
      expect(row.id).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('second run → no-op', async () => {
    const d = await freshDatabase();
    await migrate({ databaseUrl: d.url });
    const before = await query(d.url, 'SELECT id, finished_at FROM "_prisma_migrations" ORDER BY id');
    const again = await migrate({ databaseUrl: d.url });
    expect(again.applied).toEqual([]);
    expect(await query(d.url, 'SELECT id, finished_at FROM "_prisma_migrations" ORDER BY id')).toEqual(before);
  });

  it('checksum → sha256 of migration.sql, as Prisma computes it', async () => {
    const [first] = await readMigrations();
    const { readFile } = await import('node:fs/promises');
    const { createHash } = await import('node:crypto');
    const bytes = await readFile(path.join(MIGRATIONS_DIR, first!.name, 'migration.sql'));
    expect(first!.checksum).toBe(createHash('sha256').update(bytes).digest('hex'));
    // Same digest as `printf 'SELECT 1;\n' | sha256sum`.
    expect(checksum('SELECT 1;\n')).toBe('b4e0497804e46e0a0b0b8c31975b062152d551bac49c3c2e80932567b4085dcd');
  });

  it('applied migration edited afterwards → refuses, naming it', async () => {
    const d = await freshDatabase();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'migrations-'));
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
    await migrate({ databaseUrl: d.url, dir });
    const [first] = await readMigrations(dir);
    await writeFile(path.join(dir, first!.name, 'migration.sql'), `${first!.script}\n-- edited\n`);
    await expect(migrate({ databaseUrl: d.url, dir })).rejects.toThrow(new RegExp(`${first!.name} was changed after it was applied`));
  });

  it('failing migration → recorded with its logs, rolled back, and later runs refuse until resolved', async () => {
    const d = await freshDatabase();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'migrations-'));
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
    await mkdir(path.join(dir, '29991231000000_broken'));
    await writeFile(path.join(dir, '29991231000000_broken', 'migration.sql'), 'CREATE TABLE "half_done" (id int);\nSELECT no_such_function();\n');
    const error = await migrate({ databaseUrl: d.url, dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect(String((error as Error).message)).toMatch(/29991231000000_broken failed: .*no_such_function/);
    const [row] = await query<{ finished_at: Date | null; logs: string }>(d.url, `SELECT * FROM "_prisma_migrations" WHERE migration_name = '29991231000000_broken'`);
    expect(row!.finished_at).toBeNull();
    expect(row!.logs).toMatch(/no_such_function/);
    expect(await query(d.url, `SELECT to_regclass('half_done') AS t`)).toEqual([{ t: null }]);
    await expect(migrate({ databaseUrl: d.url, dir })).rejects.toThrow(/failed earlier and is not resolved/);
  });

  it('migrated schema → a Prisma client round-trip of every model field', async () => {
    const d = await freshDatabase();
    await migrate({ databaseUrl: d.url });
    const db = testDb(d.url);
    try {
      const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s, 123));
      const created = await db.download.create({
        data: {
          tokenHash: new Uint8Array([1, 2, 3, 255]),
          token: 'tok',
          email: 'a@example.com',
          title: 'Ünïcødé <title>',
          pages: 7,
          origin: 'https://example.com',
          status: 'processing',
          progress: 42,
          attempts: 2,
          error: 'boom',
          enqueuedAt: at(1),
          startedAt: at(2),
          readyAt: at(3),
          failedAt: at(4),
          emailedAt: at(5),
          expiresAt: at(6),
          file: { create: { contentType: 'application/pdf', byteSize: 4, bytes: new Uint8Array([37, 80, 68, 70]) } },
        },
        include: { file: true },
      });
      const read = await db.download.findUniqueOrThrow({ where: { tokenHash: new Uint8Array([1, 2, 3, 255]) }, include: { file: true } });
      expect(read).toEqual(created);
      expect(read.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(read.createdAt).toBeInstanceOf(Date);
      expect(read.updatedAt).toBeInstanceOf(Date);
      expect(Buffer.from(read.file!.bytes).toString()).toBe('%PDF');
      expect(read.expiresAt.toISOString()).toBe('2026-01-01T00:00:06.123Z');
      const defaults = await db.download.create({
        data: { tokenHash: new Uint8Array([9]), token: 't2', email: 'b@example.com', title: 't', pages: 1, origin: 'http://x', expiresAt: at(9) },
      });
      expect(defaults).toMatchObject({ status: 'queued', progress: 0, attempts: 0, error: null, emailedAt: null });
      await db.download.delete({ where: { id: created.id } });
      expect(await db.downloadFile.count()).toBe(0);
    } finally {
      await db.$disconnect();
    }
  });
});
