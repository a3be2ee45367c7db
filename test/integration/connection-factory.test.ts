// The one connection factory against a real Redis: names, counts and the allotment.
import { Queue, Worker } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionBudgetError, ConnectionFactory } from '../../src/redis/connection-factory.js';
import { clientList, REDIS_URL, uniqueName } from '../support/services.js';

const factories: ConnectionFactory[] = [];
function factory(allotment: number, profile: 'fail-fast' | 'patient' = 'patient') {
  const f = new ConnectionFactory({ url: REDIS_URL, processName: uniqueName('cf'), allotment, profile });
  factories.push(f);
  return f;
}
afterEach(async () => {
  await Promise.all(factories.splice(0).map((f) => f.closeAll()));
});

describe('ConnectionFactory', () => {
  it('open → a connection named nanoscale:<process>:<role>', async () => {
    const f = factory(1);
    const c = f.open('shared');
    await c.ping();
    const names = (await clientList()).map((x) => x.name);
    expect(names).toContain(`nanoscale:${f.options.processName}:shared`);
    expect(f.openCount).toBe(1);
  });

  it('one more than the allotment → ConnectionBudgetError naming the process and what is open', () => {
    const f = factory(1);
    f.open('shared');
    expect(() => f.open('extra')).toThrow(ConnectionBudgetError);
    expect(() => f.open('extra')).toThrow(/may hold 1 Redis connection\(s\) but tried to open another for "extra" \(open: shared\)/);
  });

  it('a BullMQ Worker on the shared client → its blocking duplicate is counted too, and a third is refused', async () => {
    const f = factory(2);
    const queueName = uniqueName('cfq');
    const worker = new Worker(queueName, async () => {}, { connection: f.open('shared'), name: 'x' });
    await worker.waitUntilReady();
    expect(f.openCount).toBe(2);
    expect(() => f.open('third')).toThrow(ConnectionBudgetError);
    await worker.close();
  });

  it('a QueueEvents (a blocking connection per process) in web → refused by the allotment of 1', async () => {
    const f = factory(1, 'fail-fast');
    const shared = f.open('shared');
    const queue = new Queue(uniqueName('cfq'), { connection: shared });
    expect(() => shared.duplicate()).toThrow(ConnectionBudgetError);
    await queue.close();
  });

  it('closeAll → nothing of ours left in CLIENT LIST', async () => {
    const f = factory(2);
    await f.open('a').ping();
    await f.open('b').ping();
    await f.closeAll();
    expect(f.openCount).toBe(0);
    expect((await clientList()).filter((c) => c.name.includes(f.options.processName))).toEqual([]);
  });
});
