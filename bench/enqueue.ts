// Benchmark of the request path: POST /downloads against the real Express app (createApp)
// served in-process on loopback, over a fresh migrated database, a uniquely named queue on
// the machine's Redis and no worker, so every job stays queued. For concurrency 1 and 8:
// latency percentiles, requests/s, Redis commands per request (sent by the app, counted on
// its client; run by Redis, INFO commandstats delta / N, which counts the commands inside
// Lua scripts too) and Redis memory per queued job (used_memory delta / N; our keys' MEMORY USAGE / N).
// Run on demand: `npx tsx bench/enqueue.ts [--private-redis]` (never part of `npm test`);
// --private-redis spawns a redis-server of its own, so other clients cannot blur the deltas.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { REDIS_CONNECTIONS } from '../src/budget/costs.js';
import { createDb } from '../src/db/client.js';
import { createLogger } from '../src/log.js';
import { startRedisServer } from '../src/local/redis-server.js';
import { createDownloadsQueue } from '../src/queue/downloads.js';
import { ConnectionFactory, whenReady } from '../src/redis/connection-factory.js';
import { createApp } from '../src/web/app.js';
import { csrfTokenIn } from '../test/support/form.js';
import { createTestDatabase, REDIS_URL, uniqueName } from '../test/support/services.js';

const N = 500;
const CONCURRENCIES = [1, 8];
const WARMUP = 30;

const percentile = (sorted: number[], p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

const OBSERVER_COMMANDS = new Set(['info', 'scan', 'memory|usage']);

/** INFO commandstats as { command: calls }, without the observer's own commands. */
async function commandStats(observer: Redis): Promise<Map<string, number>> {
  const info = await observer.info('commandstats');
  const stats = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (!OBSERVER_COMMANDS.has(m[1]!)) stats.set(m[1]!, Number(m[2]));
  return stats;
}
const total = (s: Map<string, number>) => [...s.values()].reduce((a, b) => a + b, 0);
const usedMemory = async (observer: Redis) => Number(/used_memory:(\d+)/.exec(await observer.info('memory'))![1]);

/** Sum of MEMORY USAGE over every key matching `pattern`: our keys only, whoever else uses this Redis. */
async function keyBytes(observer: Redis, pattern: string): Promise<number> {
  let sum = 0;
  for await (const keys of observer.scanStream({ match: pattern, count: 1000 }) as AsyncIterable<string[]>) {
    const sizes = await Promise.all(keys.map((k) => observer.call('MEMORY', 'USAGE', k, 'SAMPLES', '0') as Promise<number | null>));
    sum += sizes.reduce<number>((a, b) => a + (b ?? 0), 0);
  }
  return sum;
}

async function main(): Promise<void> {
  console.log(`enqueue benchmark — ${new Date().toISOString()}, node ${process.version}, ${cpus().length} cores, load ${load()}`);
  const privateRedis = process.argv.includes('--private-redis') ? await startRedisServer({ maxClients: 10 }) : null;
  const redisUrl = privateRedis?.url ?? REDIS_URL;
  const database = await createTestDatabase();
  const queueName = uniqueName('bench-downloads');
  const keyPrefix = `nanoscale-bench:${queueName}`;
  // As a web process: 1 Redis connection (fail-fast), a Postgres pool of 2 (WEB_DATABASE_POOL_SIZE).
  const factory = new ConnectionFactory({ url: redisUrl, processName: `bench-web-${queueName}`, allotment: REDIS_CONNECTIONS.webProcess, profile: 'fail-fast' });
  const redis = factory.open('shared');
  await whenReady(redis);
  // Every command the web process sends (BullMQ, rate limits) goes through this one client.
  let commandsSent = 0;
  const sendCommand = redis.sendCommand.bind(redis);
  redis.sendCommand = (...args: Parameters<Redis['sendCommand']>) => (commandsSent++, sendCommand(...args));
  const db = createDb({ url: database.url, poolSize: 2, processName: 'bench-web' });
  const queue = createDownloadsQueue(queueName, redis);
  const log = createLogger({ process: 'bench', level: 'silent' });
  const config = { isProduction: false, maxPages: 100, downloadTtlMs: 86_400_000, sessionSecret: 'bench-session-secret-bench-session-secret', rateLimits: { perIpPer10Minutes: 1_000_000, perEmailPerHour: 1_000_000 }, keyPrefix };
  const server = http.createServer(createApp({ db, queue, redis, log, config }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const observer = new Redis(redisUrl, { connectionName: 'nanoscale-bench-observer' });
  let sent = 0;

  /** A browser: loads the form once (cookies, CSRF token), then posts it as often as asked. */
  async function browser() {
    const form = await fetch(`${base}/`);
    const cookie = form.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const token = csrfTokenIn(await form.text());
    return async (): Promise<number> => {
      const body = new URLSearchParams({ email: `bench-${sent++}@example.com`, title: 'Benchmark', pages: '1', _csrf: token }).toString();
      const started = performance.now();
      const res = await fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie }, body, redirect: 'manual' });
      await res.arrayBuffer();
      const ms = performance.now() - started;
      if (res.status !== 303) throw new Error(`POST /downloads answered ${res.status}`);
      return ms;
    };
  }

  const rows: string[][] = [];
  try {
    const warm = await browser();
    for (let i = 0; i < WARMUP; i++) await warm();
    // Others' traffic on this shared Redis, to judge how much of a delta is not ours.
    const bg0 = total(await commandStats(observer));
    await new Promise((r) => setTimeout(r, 3_000));
    const backgroundPerSec = (total(await commandStats(observer)) - bg0) / 3;
    console.log(`redis ${redisUrl.replace(/\/\/.*@/, '//***@')}${privateRedis ? ' (private)' : ''}: other clients ~${backgroundPerSec.toFixed(1)} commands/s`);
    if (backgroundPerSec > 20) console.log('  busy shared Redis: "cmds run" and "used_mem" below include others\' traffic; rerun with --private-redis');

    for (const concurrency of CONCURRENCIES) {
      const posts = await Promise.all(Array.from({ length: concurrency }, browser));
      const [mem0, queueBytes0, limitBytes0] = [await usedMemory(observer), await keyBytes(observer, `bull:${queueName}:*`), await keyBytes(observer, `${keyPrefix}:*`)];
      const [stats0, sent0] = [await commandStats(observer), commandsSent];
      const latencies: number[] = [];
      let next = 0;
      const started = performance.now();
      await Promise.all(posts.map(async (post) => {
        while (next < N) {
          next++;
          latencies.push(await post());
        }
      }));
      const seconds = (performance.now() - started) / 1000;
      const [stats1, sent1] = [await commandStats(observer), commandsSent];
      const [mem1, queueBytes1, limitBytes1] = [await usedMemory(observer), await keyBytes(observer, `bull:${queueName}:*`), await keyBytes(observer, `${keyPrefix}:*`)];
      const perCommand = [...stats1].map(([cmd, calls]) => [cmd, (calls - (stats0.get(cmd) ?? 0)) / N] as const).filter(([, c]) => c >= 0.05).sort((a, b) => b[1] - a[1]);
      console.log(`c=${concurrency}: run by Redis per request (others' ~${((backgroundPerSec * seconds) / N).toFixed(2)} included): ${perCommand.map(([cmd, c]) => `${cmd} ${c.toFixed(2)}`).join(', ')}`);
      latencies.sort((a, b) => a - b);
      rows.push([
        String(concurrency), String(N), percentile(latencies, 50).toFixed(1), percentile(latencies, 95).toFixed(1), percentile(latencies, 99).toFixed(1), (N / seconds).toFixed(0),
        ((sent1 - sent0) / N).toFixed(2), ((total(stats1) - total(stats0)) / N).toFixed(2), ((mem1 - mem0) / N).toFixed(0), ((queueBytes1 - queueBytes0) / N).toFixed(0), ((limitBytes1 - limitBytes0) / N).toFixed(0), load(),
      ]);
    }
    const waiting = await queue.getJobCountByTypes('waiting');
    if (waiting !== WARMUP + N * CONCURRENCIES.length) throw new Error(`expected ${WARMUP + N * CONCURRENCIES.length} waiting jobs, found ${waiting}`);
  } finally {
    await queue.obliterate({ force: true }).catch(() => {});
    const leftovers = await observer.keys(`${keyPrefix}:*`);
    if (leftovers.length > 0) await observer.del(...leftovers);
    await new Promise((r) => server.close(r));
    await queue.close();
    await factory.closeAll();
    await db.$disconnect();
    await database.drop();
    observer.disconnect();
    await privateRedis?.stop();
  }

  const head = ['conc', 'N', 'p50 ms', 'p95 ms', 'p99 ms', 'req/s', 'cmds sent/req', 'cmds run/req', 'used_mem B/job', 'queue keys B/job', 'rate-limit B/req', 'load 1/5/15'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) console.log(r.map((c, i) => c.padStart(widths[i]!)).join('  '));
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
