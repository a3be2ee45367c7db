import { describe, expect, it } from 'vitest';
import { redactText, redactUrl } from '../../src/redact.js';
import { contentDisposition } from '../../src/web/routes/downloads.js';
import { validateDownloadForm } from '../../src/web/validation.js';
import { hashToken, isWellFormedToken, newToken } from '../../src/db/downloads.js';
import { formatLogLine } from '../../src/local/process-runner.js';

describe('validateDownloadForm', () => {
  it('trims and coerces a valid form', () => {
    expect(validateDownloadForm({ email: ' a@example.com ', title: ' T ', pages: '4' }, 10)).toEqual({ ok: true, value: { email: 'a@example.com', title: 'T', pages: 4 } });
  });
  it('not an object → every field has a message', () => {
    const r = validateDownloadForm(undefined, 10);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(Object.keys(r.errors).sort()).toEqual(['email', 'pages', 'title']);
  });
});

describe('contentDisposition', () => {
  it.each([
    ['Report', `attachment; filename="Report.pdf"; filename*=UTF-8''Report.pdf`],
    ['a/b\\c"d', `attachment; filename="a b c d.pdf"; filename*=UTF-8''a%20b%20c%20d.pdf`],
    ['Größe', `attachment; filename="Gr__e.pdf"; filename*=UTF-8''Gr%C3%B6%C3%9Fe.pdf`],
    ['"""', `attachment; filename="download.pdf"; filename*=UTF-8''download.pdf`],
  ])('%s', (title, expected) => expect(contentDisposition(title)).toBe(expected));
});

describe('redaction', () => {
  it('URL passwords', () => {
    expect(redactUrl('redis://h:secret@host:6379')).toBe('redis://h:***@host:6379');
    expect(redactUrl('not a url')).toBe('***');
    expect(redactText('connect to postgres://u:pw@db:5432/x failed')).toBe('connect to postgres://u:***@db:5432/x failed');
  });
});

describe('tokens', () => {
  it('256 random bits, base64url, hashed for lookups', () => {
    const a = newToken();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(newToken()).not.toBe(a);
    expect(isWellFormedToken(a)).toBe(true);
    expect(isWellFormedToken('../../etc/passwd')).toBe(false);
    expect(hashToken(a)).toHaveLength(32);
  });
});

describe('formatLogLine', () => {
  it('JSON lines become plain text prefixed with their process', () => {
    expect(formatLogLine('web.1', '{"level":"info","process":"web.1/2","msg":"web: listening"}')).toBe('web.1/2      | info  web: listening');
    expect(formatLogLine('redis', 'plain')).toBe('redis        | plain');
  });
});
