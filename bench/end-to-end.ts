// Benchmark of the whole flow, POST /downloads → "ready" email, all in one process: the
// Express app on loopback (a web process: 1 Redis connection, a Postgres pool of 2), one
// BullMQ worker with the real processor (a worker dyno: concurrency 2, 2 Redis connections,
// a Postgres pool of 3), the mail catcher as SMTP server, a fresh database and queue.
// First 5 downloads one at a time (the floor), then a burst of 50 one-page downloads from
// 8 browsers; prints throughput and request-to-email latency with where the time went.
// Run on demand: `npx tsx bench/end-to-end.ts [--concurrency 2]` (never part of `npm test`);
// cleans up after itself.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { REDIS_CONNECTIONS } from '../src/budget/costs.js';
import { createDb } from '../src/db/client.js';
import { startMailCatcher, type CapturedMail } from '../src/local/mail-catcher.js';
import { createLogger } from '../src/log.js';
import { createMailer, createTransport } from '../src/mail/mailer.js';
import { createDownloadsQueue } from '../src/queue/downloads.js';
import { ConnectionFactory, whenReady } from '../src/redis/connection-factory.js';
import { createApp } from '../src/web/app.js';
import { createDownloadsWorker } from '../src/worker/downloads-worker.js';
import { createRenderProcessor } from '../src/worker/render-job.js';
import { csrfTokenIn } from '../test/support/form.js';
import { createTestDatabase, REDIS_URL, uniqueName } from '../test/support/services.js';

const SEQUENTIAL = 5;
const BURST = 50;
const BROWSERS = 8;
// WORKER_CONCURRENCY's default; `--concurrency N` to try another (it costs no Redis connection).
const flag = process.argv.indexOf('--concurrency');
const WORKER_CONCURRENCY = flag === -1 ? 2 : Number(process.argv[flag + 1]);

const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil((p / 100) * xs.length) - 1)]!;

async function main(): Promise<void> {
  if (!Number.isInteger(WORKER_CONCURRENCY) || WORKER_CONCURRENCY < 1) throw new Error('--concurrency takes a whole number ≥ 1, e.g. --concurrency 4');
  console.log(`end-to-end benchmark — ${new Date().toISOString()}, node ${process.version}, ${cpus().length} cores, load ${load()}, worker concurrency ${WORKER_CONCURRENCY}`);
  const database = await createTestDatabase();
  const queueName = uniqueName('bench-e2e');
  const log = createLogger({ process: 'bench', level: 'silent' });
  const mail = await startMailCatcher();
  const webRedis = new ConnectionFactory({ url: REDIS_URL, processName: `bench-web-${queueName}`, allotment: REDIS_CONNECTIONS.webProcess, profile: 'fail-fast' });
  const workerRedis = new ConnectionFactory({ url: REDIS_URL, processName: `bench-worker-${queueName}`, allotment: REDIS_CONNECTIONS.workerProcess, profile: 'patient' });
  const redis = webRedis.open('shared');
  await whenReady(redis);
  const webDb = createDb({ url: database.url, poolSize: 2, processName: 'bench-web' });
  const workerDb = createDb({ url: database.url, poolSize: 3, processName: 'bench-worker' });
  const queue = createDownloadsQueue(queueName, redis);
  const config = { isProduction: false, maxPages: 100, downloadTtlMs: 86_400_000, sessionSecret: 'bench-session-secret-bench-session-secret', rateLimits: { perIpPer10Minutes: 1_000_000, perEmailPerHour: 1_000_000 }, keyPrefix: `nanoscale-bench:${queueName}` };
  const server = http.createServer(createApp({ db: webDb, queue, redis, log, config }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const mailer = createMailer({ transport: createTransport(mail.url), from: 'bench <bench@nanoscale.invalid>' });
  // As src/worker/main.ts builds it (progress writes at the default 300 ms interval).
  const worker = createDownloadsWorker({ queueName, connection: workerRedis.open('shared'), processName: `bench-worker-${queueName}`, concurrency: WORKER_CONCURRENCY, processor: createRenderProcessor({ db: workerDb, mailer, log }) });
  worker.on('error', (err) => console.error(`worker: ${err.message}`));
  worker.on('failed', (job, err) => console.error(`job ${job?.id} failed: ${err.message}`));
  await worker.waitUntilReady();

  /** A browser: loads the form once (cookies, CSRF token), then posts it. */
  async function browser() {
    const form = await fetch(`${base}/`);
    const cookie = form.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const token = csrfTokenIn(await form.text());
    return async (email: string) => {
      const body = new URLSearchParams({ email, title: 'Benchmark', pages: '1', _csrf: token }).toString();
      const res = await fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie }, body, redirect: 'manual' });
      await res.arrayBuffer();
      if (res.status !== 303) throw new Error(`POST /downloads answered ${res.status}`);
    };
  }

  /** Posts `emails` from `browsers` browsers at once; resolves with each one's POST time and email arrival (ms since epoch). */
  async function run(label: string, emails: string[], browsers: number) {
    const arrived = new Map<string, number>();
    const allMailed = mail.waitFor((m: CapturedMail) => {
      if (m.subject === 'Your download is ready' && emails.includes(m.to[0]!)) arrived.set(m.to[0]!, Date.now());
      return arrived.size === emails.length;
    }, 300_000);
    const posted = new Map<string, number>();
    const posts = await Promise.all(Array.from({ length: browsers }, browser));
    let next = 0;
    await Promise.all(posts.map(async (post) => {
      while (next < emails.length) {
        const email = emails[next++]!;
        posted.set(email, Date.now());
        await post(email);
        if (browsers === 1) await mail.waitFor((m) => m.to[0] === email);
      }
    }));
    await allMailed;
    const rows = await workerDb.download.findMany({ where: { email: { in: emails } } });
    const latency = emails.map((e) => arrived.get(e)! - posted.get(e)!);
    const wait = rows.map((r) => r.startedAt!.getTime() - r.createdAt.getTime());
    const work = rows.map((r) => r.readyAt!.getTime() - r.startedAt!.getTime());
    const send = rows.map((r) => arrived.get(r.email)! - r.readyAt!.getTime());
    const seconds = (Math.max(...arrived.values()) - Math.min(...posted.values())) / 1000;
    return [label, String(emails.length), (emails.length / seconds).toFixed(2), seconds.toFixed(2), pct(latency, 50).toFixed(0), pct(latency, 95).toFixed(0), pct(wait, 50).toFixed(0), pct(work, 50).toFixed(0), pct(send, 50).toFixed(0), load()];
  }

  const results: string[][] = [];
  try {
    await run('warm-up', ['warm@example.com'], 1);
    results.push(await run('one at a time', Array.from({ length: SEQUENTIAL }, (_, i) => `seq-${i}@example.com`), 1));
    results.push(await run(`burst, ${BROWSERS} browsers`, Array.from({ length: BURST }, (_, i) => `burst-${i}@example.com`), BROWSERS));
    const failed = await queue.getJobCountByTypes('failed');
    if (failed > 0) throw new Error(`${failed} job(s) failed`);
  } finally {
    await worker.close();
    await new Promise((r) => server.close(r));
    await queue.obliterate({ force: true }).catch(() => {});
    const leftovers = await redis.keys(`nanoscale-bench:${queueName}:*`);
    if (leftovers.length > 0) await redis.del(...leftovers);
    await queue.close();
    await webRedis.closeAll();
    await workerRedis.closeAll();
    mailer.close();
    await mail.close();
    await webDb.$disconnect();
    await workerDb.$disconnect();
    await database.drop();
  }

  const head = ['run', 'downloads', 'downloads/s', 'seconds', 'p50 ms', 'p95 ms', 'queued p50', 'render+store p50', 'mail p50', 'load 1/5/15'];
  const widths = head.map((h, i) => Math.max(h.length, ...results.map((r) => r[i]!.length)));
  for (const r of [head, ...results]) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  console.log('p50/p95: POST sent → "ready" email received; queued: row created → job started; render+store: started → ready; mail: ready → received');
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
