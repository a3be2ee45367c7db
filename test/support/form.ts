// Posting the download form as a browser does: GET / first for the CSRF token and
// cookies, then POST with both. For supertest (an agent keeps the cookies) and for
// real processes over fetch.
import request from 'supertest';
import type { Express } from 'express';

export function csrfTokenIn(html: string): string {
  const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!token) throw new Error('no CSRF token in the form');
  return token;
}

/** A supertest agent that has loaded the form: `.post()` adds its token. */
export async function formAgent(app: Express) {
  const agent = request.agent(app);
  const token = csrfTokenIn((await agent.get('/').expect(200)).text);
  return {
    agent,
    token,
    post: (fields: Record<string, string> | string) =>
      agent
        .post('/downloads')
        .type('form')
        .send(typeof fields === 'string' ? `${fields}&_csrf=${encodeURIComponent(token)}` : { ...fields, _csrf: token }),
  };
}

/**
 * POST /downloads to a running web process, as a browser would. `headers` go with
 * both requests (production needs `x-forwarded-proto: https`, as Heroku's router sends).
 */
export async function postDownload(
  baseUrl: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; location?: string; body: string }> {
  const form = await fetch(`${baseUrl}/`, { headers });
  const cookie = form.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const token = csrfTokenIn(await form.text());
  const res = await fetch(`${baseUrl}/downloads`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams({ ...fields, _csrf: token }).toString(),
    redirect: 'manual',
  });
  return { status: res.status, location: res.headers.get('location') ?? undefined, body: await res.text() };
}
