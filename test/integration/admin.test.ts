// The admin pages (the queue dashboard) need ADMIN_PASSWORD; without one set they do
// not exist. The public /status shows no secrets.
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';

const harnesses: Harness[] = [];
afterAll(async () => Promise.all(harnesses.map((h) => h.close())));
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('admin pages', () => {
  it('ADMIN_PASSWORD set → 401 without it or with a wrong one, the dashboard with it', async () => {
    const h = await startHarness({ adminPassword: 'correct-horse-battery' });
    harnesses.push(h);
    const anonymous = await request(h.app).get('/admin/queues').expect(401);
    expect(anonymous.headers['www-authenticate']).toMatch(/^Basic realm="nanoscale admin"/);
    expect(anonymous.text).toContain('Sign in as admin with ADMIN_PASSWORD');
    await request(h.app).get('/admin/queues').set('Authorization', basic('admin', 'wrong-password-123')).expect(401);
    await request(h.app).get('/admin/queues').set('Authorization', basic('root', 'correct-horse-battery')).expect(401);
    const page = await request(h.app).get('/admin/queues').set('Authorization', basic('admin', 'correct-horse-battery')).expect(200);
    expect(page.text).toMatch(/bull-board|Bull Dashboard/i);
    const api = await request(h.app).get('/admin/queues/api/queues').set('Authorization', basic('admin', 'correct-horse-battery')).expect(200);
    expect(JSON.stringify(api.body)).toContain(h.queueName);
    await request(h.app).get('/admin/queues/api/queues').expect(401);
  });

  it('no ADMIN_PASSWORD → the admin pages do not exist', async () => {
    const h = await startHarness();
    harnesses.push(h);
    await request(h.app).get('/admin/queues').expect(404);
    await request(h.app).get('/admin').set('Authorization', basic('admin', '')).expect(404);
  });
});
