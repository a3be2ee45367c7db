// Bad input: every case gets its status and a message a person understands, and
// none stores a row, enqueues a job or sends an email.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formAgent } from '../support/form.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let form: Awaited<ReturnType<typeof formAgent>>;
beforeAll(async () => {
  h = await startHarness({ maxPages: 20 });
  form = await formAgent(h.app);
});
afterAll(async () => h?.close());

const valid = { email: 'person@example.com', title: 'A title', pages: '3' };

const formCases: Array<[string, Record<string, string>, RegExp]> = [
  ['missing email', { ...valid, email: '' }, /Enter your email address\./],
  ['email without @', { ...valid, email: 'person.example.com' }, /Enter an email address like name@example\.com\./],
  ['email over 254 characters', { ...valid, email: `${'a'.repeat(250)}@example.com` }, /That email address is too long/],
  ['email with a newline (header injection)', { ...valid, email: 'a@example.com\r\nBcc: victim@example.com' }, /contains characters that are not allowed/],
  ['missing title', { ...valid, title: '   ' }, /Give your document a title\./],
  ['title over 120 characters', { ...valid, title: 'x'.repeat(121) }, /The title is too long \(120 characters at most\)\./],
  ['title with control characters', { ...valid, title: 'bad\u0000title' }, /The title contains characters that are not allowed\./],
  ['pages 0', { ...valid, pages: '0' }, /Choose a number of pages from 1 to 20\./],
  ['pages over the maximum', { ...valid, pages: '21' }, /Choose a number of pages from 1 to 20\./],
  ['pages not a number', { ...valid, pages: 'lots' }, /Choose a number of pages from 1 to 20\./],
  ['pages fractional', { ...valid, pages: '2.5' }, /Choose a whole number of pages from 1 to 20\./],
  ['pages missing', { email: valid.email, title: valid.title }, /Choose a number of pages from 1 to 20\./],
];

async function expectNothingStored() {
  expect(await h.counts()).toEqual({ rows: 0, jobs: 0, mails: 0 });
}

describe('POST /downloads with bad input', () => {
  it.each(formCases)('%s → 422, the form again with the message', async (_name, body, message) => {
    const res = await form.post(body).expect(422);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.text).toMatch(message);
    expect(res.text).toContain('<form method="post" action="/downloads"');
    expect(res.text).toContain('aria-invalid="true"');
    await expectNothingStored();
  });

  it('several bad fields → a message for each, and what was typed is kept (escaped)', async () => {
    const res = await form.post({ email: '<script>x</script>', title: '', pages: '99' }).expect(422);
    expect(res.text).toMatch(/Enter an email address like/);
    expect(res.text).toMatch(/Give your document a title/);
    expect(res.text).toMatch(/Choose a number of pages/);
    expect(res.text).toContain('value="&lt;script&gt;x&lt;/script&gt;"');
    expect(res.text).not.toContain('<script>x</script>');
    await expectNothingStored();
  });

  it('a field sent twice → 422, not a crash', async () => {
    await form.post('email=a@example.com&email=b@example.com&title=t&pages=1').expect(422);
    await expectNothingStored();
  });

  it('JSON instead of a form → 415 with a message', async () => {
    const res = await request(h.app).post('/downloads').send(valid).expect(415);
    expect(res.text).toContain('application/x-www-form-urlencoded');
    await expectNothingStored();
  });

  it('plain text → 415', async () => {
    await request(h.app).post('/downloads').set('Content-Type', 'text/plain').send('email=a@example.com&title=t&pages=1').expect(415);
    await expectNothingStored();
  });

  it('a body over the limit → 413 with a message', async () => {
    const res = await form.post({ ...valid, title: 'x'.repeat(20_000) }).expect(413);
    expect(res.text).toContain('That request is too large');
    await expectNothingStored();
  });

  it('a JSON client → the error as JSON', async () => {
    const res = await request(h.app).post('/downloads').set('Accept', 'application/json').send(valid).expect(415);
    expect(res.body).toEqual({ error: { status: 415, code: 'http:unsupported-media-type', message: expect.stringContaining('form') } });
  });

  it('a valid request after all that → accepted', async () => {
    await form.post(valid).expect(303);
    expect((await h.counts()).rows).toBe(1);
  });
});
