// The Prisma client for one process, on a node-postgres pool through
// @prisma/adapter-pg. The pool size comes from config (the budget sizes it), and
// `application_name` attributes every connection in pg_stat_activity to its process.
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.js';

export type { PrismaClient };

export interface DbOptions {
  url: string;
  /** Connections this process may open (default 2). */
  poolSize?: number;
  /** Shows up as application_name, e.g. `nanoscale:web.1/2`. */
  processName: string;
}

export function createDb(options: DbOptions): PrismaClient {
  const adapter = new PrismaPg({
    connectionString: options.url,
    max: options.poolSize ?? 2,
    application_name: `nanoscale:${options.processName}`.slice(0, 63),
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  return new PrismaClient({ adapter });
}
