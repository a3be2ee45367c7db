// Bad, malformed and hostile requests, table-driven: each gets a 4xx with a message a
// person can read, none a 5xx, and none creates a row, a job or an email.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csrfTokenIn, formAgent } from '../support/form.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let form: Awaited<ReturnType<typeof formAgent>>;
beforeAll(async () => {
  h = await startHarness({ maxPages: 20 });
  form = await formAgent(h.app);
});
afterAll(async () => h?.close());

const ok = { email: 'person@example.com', title: 'A title', pages: '3' };
type Fields = Record<string, string>;

/** [name, fields (sent with a valid CSRF token), expected status, message] */
const formCases: Array<[string, Fields | string, number, RegExp]> = [
  ['empty email', { ...ok, email: '' }, 422, /Enter your email address/],
  ['blank email', { ...ok, email: '   ' }, 422, /Enter your email address/],
  ['no @', { ...ok, email: 'plainaddress' }, 422, /Enter an email address like/],
  ['no local part', { ...ok, email: '@example.com' }, 422, /Enter an email address like/],
  ['no domain dot', { ...ok, email: 'a@b' }, 422, /Enter an email address like/],
  ['two @', { ...ok, email: 'a@@example.com' }, 422, /Enter an email address like/],
  ['space inside', { ...ok, email: 'a b@example.com' }, 422, /Enter an email address like/],
  ['script as email', { ...ok, email: '<script>alert(1)</script>@example.com' }, 422, /Enter an email address like/],
  ['Bcc injection (CRLF)', { ...ok, email: 'a@example.com\r\nBcc: victim@example.com' }, 422, /not allowed/],
  ['Subject injection (LF)', { ...ok, email: 'a@example.com\nSubject: free money' }, 422, /not allowed/],
  ['two recipients with a comma', { ...ok, email: 'a@example.com,b@example.com' }, 422, /Enter an email address like/],
  ['two recipients with a semicolon', { ...ok, email: 'a@example.com;b@example.com' }, 422, /Enter an email address like/],
  ['display-name form', { ...ok, email: '"Boss" <boss@example.com>' }, 422, /Enter an email address like/],
  ['email of 300 characters', { ...ok, email: `${'a'.repeat(288)}@example.com` }, 422, /too long/],
  ['email of 9,000 characters', { ...ok, email: `${'a'.repeat(9_000)}@example.com` }, 413, /too large/],
  ['empty title', { ...ok, title: '' }, 422, /Give your document a title/],
  ['blank title', { ...ok, title: '   \t ' }, 422, /title/],
  ['title of 121 characters', { ...ok, title: 'x'.repeat(121) }, 422, /too long/],
  ['script tag in title', { ...ok, title: '<script>alert(1)</script>' }, 422, /cannot contain HTML tags/],
  ['img onerror in title', { ...ok, title: '<img src=x onerror=alert(1)>' }, 422, /cannot contain HTML tags/],
  ['iframe in title', { ...ok, title: 'hi <iframe src=//evil.example>' }, 422, /cannot contain HTML tags/],
  ['NUL in title', { ...ok, title: 'a\u0000b' }, 422, /not allowed/],
  ['CRLF header in title', { ...ok, title: 'x\r\nBcc: victim@example.com' }, 422, /not allowed/],
  ['escape character in title', { ...ok, title: 'x\u001b[31mred' }, 422, /not allowed/],
  ['pages empty', { ...ok, pages: '' }, 422, /number of pages/],
  ['pages zero', { ...ok, pages: '0' }, 422, /number of pages/],
  ['pages negative', { ...ok, pages: '-1' }, 422, /number of pages/],
  ['pages over the maximum', { ...ok, pages: '21' }, 422, /number of pages/],
  ['pages huge', { ...ok, pages: '99999999999999999999' }, 422, /number of pages/],
  ['pages in exponent form', { ...ok, pages: '1e3' }, 422, /number of pages/],
  ['pages fractional', { ...ok, pages: '2.5' }, 422, /whole number/],
  ['pages not a number', { ...ok, pages: 'abc' }, 422, /number of pages/],
  ['pages NaN', { ...ok, pages: 'NaN' }, 422, /number of pages/],
  ['pages Infinity', { ...ok, pages: 'Infinity' }, 422, /number of pages/],
  ['script as pages', { ...ok, pages: '<script>alert(1)</script>' }, 422, /number of pages/],
  ['email sent twice', 'email=a%40example.com&email=b%40example.com&title=t&pages=1', 422, /email/i],
  ['pages sent twice', 'email=a%40example.com&title=t&pages=1&pages=2', 422, /pages/],
  ['too many fields', `email=a%40example.com&title=t&pages=1${'&f=1'.repeat(40)}`, 413, /too many fields/],
  ['body over 8 kB', { ...ok, title: 'x'.repeat(20_000) }, 413, /too large/],
];

async function expectNothingStored() {
  expect(await h.counts()).toEqual({ rows: 0, jobs: 0, mails: 0 });
}

function expectReadable(res: request.Response, message: RegExp) {
  expect(res.status).toBeGreaterThanOrEqual(400);
  expect(res.status).toBeLessThan(500);
  expect(res.text).toMatch(message);
  expect(res.text).not.toMatch(/\bat [\w.<>]+ \(|node_modules|Error:/);
}

describe('hostile form posts (with a valid CSRF token)', () => {
  it.each(formCases)('%s → %i', async (_name, fields, status, message) => {
    const res = await form.post(fields);
    expect(res.status).toBe(status);
    expectReadable(res, message);
    if (status === 422) {
      // The form again, the field marked, its message next to it.
      expect(res.text).toContain('<form method="post" action="/downloads"');
      expect(res.text).toContain('aria-invalid="true"');
    }
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

  it('a JSON client → the error as JSON', async () => {
    const res = await request(h.app).post('/downloads').set('Accept', 'application/json').send(ok).expect(415);
    expect(res.body).toEqual({ error: { status: 415, code: 'http:unsupported-media-type', message: expect.stringContaining('form') } });
  });
});

const requestCases: Array<[string, number, RegExp, () => request.Test]> = [
  ['JSON body', 415, /application\/x-www-form-urlencoded/, () => request(h.app).post('/downloads').send(ok)],
  ['text/plain body', 415, /x-www-form-urlencoded/, () => request(h.app).post('/downloads').set('Content-Type', 'text/plain').send('email=a')],
  ['multipart body', 415, /x-www-form-urlencoded/, () => request(h.app).post('/downloads').field('email', 'a@example.com')],
  ['XML body', 415, /x-www-form-urlencoded/, () => request(h.app).post('/downloads').set('Content-Type', 'application/xml').send('<a/>')],
  ['PUT /downloads', 405, /requested with the form/, () => request(h.app).put('/downloads').type('form').send(ok)],
  ['DELETE /downloads', 405, /requested with the form/, () => request(h.app).delete('/downloads')],
  ['GET /downloads', 405, /requested with the form/, () => request(h.app).get('/downloads')],
  ['POST / ', 404, /does not exist/, () => request(h.app).post('/').type('form').send(ok)],
  ['no CSRF token', 403, /expired or came from another site/, () => request(h.app).post('/downloads').type('form').send(ok)],
  ['a made-up CSRF token', 403, /expired or came from another site/, () => form.agent.post('/downloads').type('form').send({ ...ok, _csrf: 'forged' })],
  ['a token without its cookies (another site posting)', 403, /expired or came from another site/, () => request(h.app).post('/downloads').type('form').send({ ...ok, _csrf: form.token })],
  ['unknown token', 404, /no download at this address/, () => request(h.app).get(`/downloads/${'A'.repeat(43)}`)],
  ['short token', 404, /no download at this address/, () => request(h.app).get('/downloads/abc')],
  ['long token', 404, /no download at this address/, () => request(h.app).get(`/downloads/${'A'.repeat(2_000)}`)],
  ['path traversal', 404, /no download|does not exist/, () => request(h.app).get('/downloads/..%2F..%2Fetc%2Fpasswd')],
  ['dot-dot file', 404, /does not exist|no download/, () => request(h.app).get('/downloads/../../etc/passwd')],
  ['SQL in the token', 404, /no download at this address/, () => request(h.app).get(`/downloads/${encodeURIComponent("' OR 1=1 --")}`)],
  ['NUL in the token', 404, /no download at this address/, () => request(h.app).get('/downloads/abc%00def')],
  ['unknown token, file', 404, /no download at this address/, () => request(h.app).get(`/downloads/${'B'.repeat(43)}/file`)],
  ['malformed percent-encoding', 400, /That address could not be read/, () => request(h.app).get('/downloads/%E0%A4%A')],
];

describe('hostile requests', () => {
  it.each(requestCases)('%s → %i', async (_name, status, message, send) => {
    const res = await send();
    expect(res.status).toBe(status);
    expectReadable(res, message);
    await expectNothingStored();
  });

  it('more than 50 cases in all', () => {
    expect(formCases.length + requestCases.length).toBeGreaterThanOrEqual(50);
  });

  it('a valid request after all that → accepted', async () => {
    await form.post(ok).expect(303);
    expect((await h.counts()).rows).toBe(1);
  });
});

describe('rate limits', () => {
  it('per IP → 429 with a message, counted in Redis', async () => {
    const limited = await startHarness({ rateLimits: { perIpPer10Minutes: 3, perEmailPerHour: 100 } });
    try {
      const f = await formAgent(limited.app);
      for (let i = 0; i < 3; i++) await f.post({ ...ok, email: `ip${i}@example.com` }).expect(303);
      const res = await f.post({ ...ok, email: 'ip9@example.com' }).expect(429);
      expect(res.text).toContain('Too many download requests from your address');
      expect(res.headers['ratelimit-policy']).toBeDefined();
      expect((await limited.counts()).rows).toBe(3);
    } finally {
      await limited.close();
    }
  });

  it('per email address → 429 for that address only', async () => {
    const limited = await startHarness({ rateLimits: { perIpPer10Minutes: 100, perEmailPerHour: 2 } });
    try {
      const f = await formAgent(limited.app);
      await f.post({ ...ok, email: 'same@example.com' }).expect(303);
      await f.post({ ...ok, email: 'SAME@example.com' }).expect(303);
      const res = await f.post({ ...ok, email: 'same@example.com' }).expect(429);
      expect(res.text).toContain('Too many downloads requested for this email address');
      await f.post({ ...ok, email: 'other@example.com' }).expect(303);
    } finally {
      await limited.close();
    }
  });
});

describe('CSRF cookies after SESSION_SECRET changes', () => {
  it('an old cookie → the form still loads with a new token, and that token works', async () => {
    const rotated = await startHarness({ sessionSecret: 'a-rotated-session-secret-of-enough-length' });
    try {
      // The same browser (its cookies from the old secret) visits the app with the new one.
      const cookies = (await request(h.app).get('/').expect(200)).headers['set-cookie'] as unknown as string[];
      const cookie = cookies.map((c) => c.split(';')[0]).join('; ');
      const page = await request(rotated.app).get('/').set('Cookie', cookie).expect(200);
      const fresh = (page.headers['set-cookie'] as unknown as string[]).map((c) => c.split(';')[0]);
      const jar = [...new Map([...cookie.split('; '), ...fresh].map((c) => [c.split('=')[0], c])).values()].join('; ');
      await request(rotated.app).post('/downloads').set('Cookie', jar).type('form').send({ ...ok, _csrf: csrfTokenIn(page.text) }).expect(303);
    } finally {
      await rotated.close();
    }
  });
});

describe('headers', () => {
  it('pages carry a strict CSP and no framing; cookies are HttpOnly', async () => {
    const res = await request(h.app).get('/').expect(200);
    expect(res.headers['content-security-policy']).toMatch(/default-src 'none'/);
    expect(res.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-powered-by']).toBeUndefined();
    for (const c of res.headers['set-cookie'] as unknown as string[]) expect(c).toMatch(/HttpOnly/);
    expect(csrfTokenIn(res.text).length).toBeGreaterThan(20);
  });
});
