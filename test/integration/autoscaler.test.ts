// The autoscaler against the machine's Redis and an HTTP fake of the Heroku Platform
// API (test/support/fake-platform-api.ts), through the real heroku-client. Each
// simulated process gets what production gives it: its own ConnectionFactory and
// allotment, one shared client (so opening a second connection would throw), a Queue
// on that client, its own formation client and its own coordinator. No mocks.
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { autoscalerKeys, createAutoscaler, type Autoscaler } from '../../src/autoscaler/coordinator.js';
import { createHerokuFormation, FormationError, type Formation } from '../../src/autoscaler/heroku-formation.js';
import type { Logger } from '../../src/log.js';
import { createDownloadsQueue, enqueueDownload, RENDER_JOB, type DownloadsQueue } from '../../src/queue/downloads.js';
import { ConnectionFactory } from '../../src/redis/connection-factory.js';
import { createDownloadsWorker } from '../../src/worker/downloads-worker.js';
import { startFakePlatformApi, type FakePlatformApi, type PlatformCall } from '../support/fake-platform-api.js';
import { REDIS_URL, uniqueName, waitFor } from '../support/services.js';

interface SimulatedProcess {
  name: string;
  factory: ConnectionFactory;
  shared: Redis;
  queue: DownloadsQueue;
  formation: Formation;
  autoscaler: Autoscaler;
}

interface RigOptions {
  webProcesses?: number;
  ceiling?: number;
  idleTimeoutMs?: number;
  intervalMs?: number;
  timeoutMs?: number;
  backoffBaseMs?: number;
}

/** A pino logger writing JSON lines into `lines`, to check the log line per decision. */
function capturingLogger(lines: string[], processName: string): Logger {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return pino({ level: 'info', base: { process: processName } }, sink);
}

class Rig {
  readonly queueName = uniqueName('test-autoscaler');
  readonly keyPrefix = `nanoscale-test:${this.queueName}`;
  readonly processes: SimulatedProcess[] = [];
  readonly workers: Worker[] = [];
  readonly logLines: string[] = [];
  #seq = 0;

  constructor(
    readonly fake: FakePlatformApi,
    readonly options: Required<RigOptions>,
  ) {}

  get web(): SimulatedProcess[] {
    return this.processes.filter((p) => p.name.startsWith('web.'));
  }

  /** A process and its one shared client (a web cluster worker, or a worker dyno's command connection). */
  addProcess(name: string, allotment: number, profile: 'fail-fast' | 'patient'): SimulatedProcess {
    const factory = new ConnectionFactory({ url: REDIS_URL, processName: `${this.queueName}-${name}`, allotment, profile });
    const shared = factory.open('shared');
    const queue = createDownloadsQueue(this.queueName, shared);
    queue.on('error', () => {});
    const formation = createHerokuFormation({ apiKey: this.fake.token, appName: this.fake.appName, apiUrl: this.fake.url, timeoutMs: this.options.timeoutMs });
    const autoscaler = createAutoscaler({
      redis: shared,
      queue,
      formation,
      policyOptions: { idleTimeoutMs: this.options.idleTimeoutMs, jobsPerWorker: 10 },
      ceiling: this.options.ceiling,
      ceilingReason: 'test budget',
      processName: name,
      log: capturingLogger(this.logLines, name),
      keyPrefix: this.keyPrefix,
      intervalMs: this.options.intervalMs,
      backoffBaseMs: this.options.backoffBaseMs,
      backoffMaxMs: 2_000,
      rateLimitBackoffMs: 1_000,
      unsettledHoldMs: 5_000,
    });
    const p = { name, factory, shared, queue, formation, autoscaler };
    this.processes.push(p);
    return p;
  }

  /** A worker dyno: a real BullMQ Worker (2 connections) whose completions feed its idle monitor (trigger 2). */
  startWorkerDyno(onCompleted: (finishedOn: number) => void): SimulatedProcess {
    const p = this.addProcess('worker.1', 2, 'patient');
    const worker = createDownloadsWorker({
      queueName: this.queueName,
      connection: p.shared,
      processName: `${this.queueName}-worker.1`,
      processor: async () => {
        await sleep(2);
      },
    });
    worker.on('error', () => {});
    worker.on('completed', (job) => {
      onCompleted(job.finishedOn ?? Date.now());
      void p.autoscaler.tick();
    });
    this.workers.push(worker);
    p.autoscaler.start();
    return p;
  }

  startAll(): void {
    for (const p of this.processes) p.autoscaler.start();
  }

  nextId(): string {
    return `${this.queueName}-job-${++this.#seq}`;
  }

  /** `n` enqueues spread over the web processes: each enqueues in sequence, all at the same time. */
  async burst(n: number): Promise<void> {
    const web = this.web;
    const ids = Array.from({ length: n }, () => this.nextId());
    await Promise.all(
      web.map(async (p, i) => {
        for (let k = i; k < ids.length; k += web.length) {
          await enqueueDownload(p.queue, ids[k]!);
          p.autoscaler.notifyEnqueued();
        }
      }),
    );
  }

  /** The enqueue path's latency (enqueueDownload + notifyEnqueued), ms, for `n` enqueues one at a time. */
  async latencies(n: number): Promise<number[]> {
    const web = this.web;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = web[i % web.length]!;
      const t0 = performance.now();
      await enqueueDownload(p.queue, this.nextId());
      p.autoscaler.notifyEnqueued();
      out.push(performance.now() - t0);
    }
    return out;
  }

  /** Every process has finished an evaluation started now, and the platform has answered every call. */
  async settle(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.autoscaler.tick()));
    await Promise.all(this.processes.map((p) => p.formation.settled()));
    await waitFor(async () => this.fake.calls.every((c) => c.status !== undefined), { timeoutMs: 5_000, what: 'every platform call answered' });
  }

  /** Started, with the formation read once (so an injected failure hits the next call, not this read). */
  async warm(): Promise<void> {
    this.startAll();
    await waitFor(async () => (await this.status()).current !== null, { timeoutMs: 3_000, what: 'formation read' });
    await this.settle();
  }

  patches(quantity?: number): PlatformCall[] {
    return this.fake.callsOf('PATCH', '/formation/worker').filter((c) => quantity === undefined || (c.body as { quantity?: number }).quantity === quantity);
  }

  status() {
    return this.processes[0]!.autoscaler.status();
  }

  /** `autoscaler: worker 0 -> 1 (waiting=… active=…) [heroku]` lines. */
  decisionLines(): string[] {
    return this.logLines.map((l) => (JSON.parse(l) as { msg: string }).msg).filter((m) => /^autoscaler: worker \d+ -> \d+ \(/.test(m));
  }

  async close(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.autoscaler.stop()));
    for (const w of this.workers) await w.close(true).catch(() => {});
    await Promise.all(this.processes.map((p) => p.formation.settled()));
    const first = this.processes[0];
    if (first) {
      await first.queue.obliterate({ force: true }).catch(() => {});
      const keys = autoscalerKeys(this.keyPrefix, 'worker');
      await first.shared.del(keys.state, keys.lock, keys.reconcile);
    }
    for (const p of this.processes) {
      await p.queue.close().catch(() => {});
      await p.factory.closeAll();
    }
    await this.fake.close();
  }
}

const rigs: Rig[] = [];

async function rig(options: RigOptions = {}): Promise<Rig> {
  const r = new Rig(await startFakePlatformApi(), {
    webProcesses: 6,
    ceiling: 1,
    idleTimeoutMs: 60_000,
    intervalMs: 500,
    timeoutMs: 1_000,
    backoffBaseMs: 200,
    ...options,
  });
  rigs.push(r);
  for (let i = 1; i <= r.options.webProcesses; i++) r.addProcess(`web.1/${i}`, 1, 'fail-fast');
  return r;
}

afterEach(async () => {
  while (rigs.length > 0) await rigs.pop()!.close();
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('autoscaler: enqueue bursts', () => {
  it('1,000 enqueues from 6 web processes at zero workers → exactly one PATCH quantity=1; a second burst → no platform call', async () => {
    const r = await rig({ ceiling: 1 });
    r.startAll();

    await r.burst(1_000);
    await r.settle();
    await sleep(300);

    expect(r.patches().map((c) => c.body)).toEqual([{ quantity: 1 }]);
    expect(r.fake.callsOf('GET')).toHaveLength(1); // the formation, read once for all processes
    expect(r.fake.quantity()).toBe(1);
    expect(await r.status()).toMatchObject({ current: 1, desired: 1, rule: expect.stringMatching(/^(load|ceiling)$/), platformCalls: 2, lastError: null, rateLimitRemaining: 4_498 });
    expect(r.decisionLines()).toHaveLength(1);
    expect(r.decisionLines()[0]).toMatch(/^autoscaler: worker 0 -> 1 \(waiting=\d+ active=0\) \[heroku\]$/);

    const callsBefore = r.fake.calls.length;
    await r.burst(1_000);
    await r.settle();
    await sleep(300);
    expect(r.fake.calls.length).toBe(callsBefore);
    // No process opened a connection of its own: each still holds only its shared client.
    expect(r.processes.map((p) => p.factory.openCount)).toEqual([1, 1, 1, 1, 1, 1]);
  }, 20_000);
});

describe('autoscaler: idle timeout', () => {
  it('after the queue drains → exactly one scale-to-zero PATCH, between idleTimeoutMs and idleTimeoutMs + one interval', async () => {
    const idleTimeoutMs = 1_500;
    const intervalMs = 500;
    const r = await rig({ ceiling: 1, idleTimeoutMs, intervalMs });
    r.startAll();
    await r.burst(30);
    await waitFor(async () => r.fake.quantity() === 1, { timeoutMs: 5_000, what: 'scaled to 1' });

    // The worker dyno comes up and works the queue off.
    let lastFinishedOn = 0;
    let lastCompletedAt = 0;
    let completed = 0;
    const worker = r.startWorkerDyno((finishedOn) => {
      lastFinishedOn = Math.max(lastFinishedOn, finishedOn);
      lastCompletedAt = Date.now();
      completed++;
    });
    await waitFor(async () => completed === 30, { timeoutMs: 10_000, what: '30 jobs completed' });
    expect(r.fake.quantity()).toBe(1);

    const down = await waitFor(async () => r.patches(0)[0], { timeoutMs: idleTimeoutMs + 3 * intervalMs, what: 'scale-to-zero PATCH' });
    // Not before the idle timeout counted from the last job's end, not later than one interval after it.
    expect(down.at - lastFinishedOn).toBeGreaterThanOrEqual(idleTimeoutMs);
    expect(down.at - lastCompletedAt).toBeLessThanOrEqual(idleTimeoutMs + intervalMs);
    await sleep(3 * intervalMs);
    expect(r.patches().map((c) => c.body)).toEqual([{ quantity: 1 }, { quantity: 0 }]);
    expect(await r.status()).toMatchObject({ current: 0, desired: 0, rule: 'idle-timeout' });
    expect(worker.factory.openCount).toBe(2); // the worker dyno: shared + BullMQ's blocking connection
    expect(r.decisionLines().at(-1)).toMatch(/^autoscaler: worker 1 -> 0 \(waiting=0 active=0\) \[heroku\]$/);
  }, 20_000);
});

describe('autoscaler: delayed jobs', () => {
  it('a delayed job coming due at zero workers → a worker within one reconcile interval, not long before it is due', async () => {
    const intervalMs = 500;
    const r = await rig({ webProcesses: 2, intervalMs });
    await r.warm();

    const p = r.web[0]!;
    const id = r.nextId();
    const job = await p.queue.add(RENDER_JOB, { downloadId: id }, { jobId: id, delay: 3_000 });
    p.autoscaler.notifyEnqueued();
    const dueAt = job.timestamp + 3_000;

    await sleep(1_000);
    expect(r.patches()).toEqual([]); // a job due in 2 s is not work yet
    const up = await waitFor(async () => r.patches(1)[0], { timeoutMs: 5_000, what: 'scale-up PATCH' });
    expect(up.at).toBeLessThanOrEqual(dueAt + intervalMs);
    expect(up.at).toBeGreaterThanOrEqual(dueAt - intervalMs /* the look-ahead */ - 50);
    expect(r.patches()).toHaveLength(1);
  }, 20_000);
});

describe('autoscaler: platform failures', () => {
  it('429 then 200 → the enqueue path is as fast as with a healthy platform, and the formation converges after Retry-After', async () => {
    const healthy = await rig({ ceiling: 1 });
    await healthy.warm();
    const healthyLatencies = await healthy.latencies(200);
    await healthy.settle();
    expect(healthy.patches().map((c) => c.status)).toEqual([200]);

    const limited = await rig({ ceiling: 1 });
    await limited.warm(); // reads the formation (0)
    limited.fake.failNext(1, 429, { retryAfterSeconds: 1 });
    const limitedLatencies = await limited.latencies(200);

    expect(median(limitedLatencies)).toBeLessThan(median(healthyLatencies) * 3 + 2);
    await waitFor(async () => limited.fake.quantity() === 1 && (await limited.status()).current === 1, { timeoutMs: 8_000, what: 'converged' });
    const [refused, accepted] = limited.patches();
    expect([refused?.status, accepted?.status]).toEqual([429, 200]);
    expect(accepted!.at - refused!.at).toBeGreaterThanOrEqual(1_000);
    expect(limited.patches()).toHaveLength(2);
    expect(await limited.status()).toMatchObject({ current: 1, consecutiveFailures: 0, lastError: { status: 429 } });
  }, 20_000);

  it('500s → backs off exponentially, reads the formation again, converges', async () => {
    const r = await rig({ ceiling: 1, backoffBaseMs: 200 });
    await r.warm();
    r.fake.failNext(3, 500);
    await r.burst(20);
    await waitFor(async () => r.fake.quantity() === 1 && (await r.status()).current === 1, { timeoutMs: 10_000, what: 'converged' });
    await r.settle();
    // PATCH 500 → (200 ms) GET 500 → (400 ms) GET 500 → (800 ms) GET 200 → PATCH 200.
    const sequence = r.fake.calls.slice(1).map((c) => `${c.method} ${c.status}`);
    expect(sequence).toEqual(['PATCH 500', 'GET 500', 'GET 500', 'GET 200', 'PATCH 200']);
    const gaps = r.fake.calls.slice(1).map((c, i, all) => (i === 0 ? 0 : c.at - all[i - 1]!.at));
    expect(gaps[2]!).toBeGreaterThan(gaps[1]! * 1.5); // exponential
    expect(await r.status()).toMatchObject({ current: 1, consecutiveFailures: 0, uncertain: false });
  }, 20_000);

  it('a slow platform (answer after the time-out) → the enqueue path does not wait; the late change is read back, not sent twice', async () => {
    const healthy = await rig({ ceiling: 1, timeoutMs: 300 });
    await healthy.warm();
    const healthyLatencies = await healthy.latencies(100);

    const r = await rig({ ceiling: 1, timeoutMs: 300 });
    await r.warm();
    r.fake.slowNext(1, 1_500);
    const slowLatencies = await r.latencies(100);
    expect(median(slowLatencies)).toBeLessThan(median(healthyLatencies) * 3 + 2);

    await waitFor(async () => (await r.status()).lastError !== null, { timeoutMs: 3_000, what: 'the time-out recorded' });
    const failed = await r.status();
    expect(failed).toMatchObject({ current: 0, uncertain: true, lastError: { status: null } });
    expect(failed.lastError?.message).toMatch(/took longer than 300 ms/);

    await waitFor(async () => (await r.status()).current === 1, { timeoutMs: 8_000, what: 'converged' });
    await r.settle();
    // heroku-client did not resend the PATCH; the next turn read the formation instead.
    expect(r.patches()).toHaveLength(1);
    const afterPatch = r.fake.calls.slice(r.fake.calls.indexOf(r.patches()[0]!) + 1);
    expect(afterPatch.map((c) => `${c.method} ${c.status}`)).toEqual(['GET 200']);
    expect(afterPatch[0]!.at - r.patches()[0]!.at).toBeGreaterThanOrEqual(1_500); // the lock was held until the late answer
    expect(r.fake.quantity()).toBe(1);
  }, 20_000);

  it('a failed call is not recorded as done: the known quantity stays, the error is recorded, and it converges once the platform heals', async () => {
    const r = await rig({ ceiling: 1 });
    await r.warm();
    r.fake.failNext(1_000, 503);
    await r.burst(5);

    await waitFor(async () => r.patches().length >= 1 && (await r.status()).lastError !== null, { timeoutMs: 3_000, what: 'a failed PATCH' });
    await sleep(800);
    const status = await r.status();
    expect(status.current).toBe(0);
    expect(status.lastChange).toBeNull();
    expect(status.lastError).toMatchObject({ status: 503 });
    expect(status.lastError?.message).toMatch(/answered 503/);
    expect(status.consecutiveFailures).toBeGreaterThanOrEqual(1);
    expect(status.backoffUntil).toBeGreaterThan(0);
    expect(r.fake.quantity()).toBe(0);
    expect(r.decisionLines()).toEqual([]);

    r.fake.heal();
    await waitFor(async () => (await r.status()).current === 1, { timeoutMs: 8_000, what: 'converged after healing' });
    expect(r.fake.quantity()).toBe(1);
    expect((await r.status()).lastChange).toMatchObject({ from: 0, to: 1 });
  }, 20_000);
});

describe('heroku formation (the actuator) against the fake API', () => {
  let fake: FakePlatformApi | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('GET and PATCH the worker formation → the quantity, with RateLimit-Remaining exposed', async () => {
    fake = await startFakePlatformApi({ formation: { web: 2, worker: 0 } });
    const formation = createHerokuFormation({ apiKey: fake.token, appName: fake.appName, apiUrl: fake.url });
    expect(formation.rateLimitRemaining).toBeNull();
    expect(await formation.getQuantity()).toBe(0);
    expect(await formation.setQuantity(2)).toBe(2);
    expect(fake.quantity('worker')).toBe(2);
    expect(fake.quantity('web')).toBe(2);
    expect(formation.rateLimitRemaining).toBe(4_498);
    expect(fake.calls.map((c) => [c.method, c.path, c.body ?? null])).toEqual([
      ['GET', `/apps/${fake.appName}/formation/worker`, null],
      ['PATCH', `/apps/${fake.appName}/formation/worker`, { quantity: 2 }],
    ]);
  });

  it('a wrong token → FormationError 401 unauthorized, not retryable', async () => {
    fake = await startFakePlatformApi();
    const formation = createHerokuFormation({ apiKey: 'wrong', appName: fake.appName, apiUrl: fake.url });
    const err = await formation.getQuantity().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormationError);
    expect(err).toMatchObject({ status: 401, retryable: false, platformId: 'unauthorized', code: 'nanoscale:formation' });
    expect((err as Error).message).not.toContain('wrong');
  });

  it('429 with Retry-After → retryable with retryAfterMs; an empty token pool → 429 with RateLimit-Remaining 0', async () => {
    fake = await startFakePlatformApi({ rateLimitRemaining: 2 });
    const formation = createHerokuFormation({ apiKey: fake.token, appName: fake.appName, apiUrl: fake.url });
    fake.failNext(1, 429, { retryAfterSeconds: 2 });
    await expect(formation.setQuantity(1)).rejects.toMatchObject({ status: 429, retryable: true, retryAfterMs: 2_000, platformId: 'rate_limit' });
    expect(fake.quantity()).toBe(0);
    expect(formation.rateLimitRemaining).toBe(1);
    await formation.getQuantity();
    expect(formation.rateLimitRemaining).toBe(0);
    await expect(formation.getQuantity()).rejects.toMatchObject({ status: 429, retryAfterMs: null });
  });

  it('500 → retryable; an unknown app → 404 not retryable', async () => {
    fake = await startFakePlatformApi();
    fake.failNext(1, 500);
    const formation = createHerokuFormation({ apiKey: fake.token, appName: fake.appName, apiUrl: fake.url });
    await expect(formation.setQuantity(1)).rejects.toMatchObject({ status: 500, retryable: true });
    const other = createHerokuFormation({ apiKey: fake.token, appName: 'no-such-app', apiUrl: fake.url });
    await expect(other.getQuantity()).rejects.toMatchObject({ status: 404, retryable: false, platformId: 'not_found' });
  });

  it('an answer later than timeoutMs → a retryable time-out, and heroku-client sends nothing more (settled() waits for the late answer)', async () => {
    fake = await startFakePlatformApi();
    const formation = createHerokuFormation({ apiKey: fake.token, appName: fake.appName, apiUrl: fake.url, timeoutMs: 200 });
    fake.slowNext(1, 800);
    const t0 = Date.now();
    await expect(formation.setQuantity(1)).rejects.toMatchObject({ failure: 'timeout', status: null, retryable: true });
    expect(Date.now() - t0).toBeLessThan(600);
    await formation.settled();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(800);
    await sleep(2_500); // heroku-client would resend an aborted request after 1 s
    expect(fake.calls).toHaveLength(1);
  });

  it('a closed port → a retryable network error', async () => {
    fake = await startFakePlatformApi();
    const url = fake.url;
    await fake.close();
    fake = undefined;
    const formation = createHerokuFormation({ apiKey: 'x', appName: 'app', apiUrl: url, timeoutMs: 300 });
    await expect(formation.getQuantity()).rejects.toMatchObject({ retryable: true, status: null });
  });
});
