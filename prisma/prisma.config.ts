// Prisma CLI configuration (Prisma 7 reads the database URL from here, not the schema).
// Used by `prisma generate` at build time and, where Prisma's engine can be had,
// by `prisma migrate status|deploy`; the app itself applies migrations with src/db/migrate.ts.
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'schema.prisma',
  migrations: { path: 'migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://localhost:5432/postgres' },
});
