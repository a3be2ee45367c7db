// What a person does, in a real browser against the Procfile's real processes:
// 1. starts web (2 cluster workers) and worker from dist/, with Postgres, Redis and
//    a capturing SMTP server whose mail the web app shows at /dev/mail;
// 2. fills in the form, watches the status page refresh itself until "Ready";
// 3. opens the "ready" email at /dev/mail, clicks its link inside the sandboxed
//    iframe, lands on the status page and downloads the PDF;
// 4. separately, submits a bad email address and reads the field message.
// Screenshots go to test/artifacts/ (git-ignored) for a person to look at.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page, type Response } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/local/free-port.js';
import { startMailCatcher, type MailCatcher } from '../../src/local/mail-catcher.js';
import { countPdfPages } from '../../src/worker/render-pdf.js';
import { ROOT, startProcess, type TestProcess } from '../support/processes.js';
import { createTestDatabase, REDIS_URL, uniqueName, waitFor, type TestDatabase } from '../support/services.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test', 'artifacts');
// Booting two processes and a browser, then one render: well under this.
const TIMEOUT_MS = 90_000;

let database: TestDatabase | undefined;
let mail: MailCatcher | undefined;
let mailDir: string | undefined;
let browser: Browser | undefined;
let context: BrowserContext | undefined;
let baseUrl: string;
const running: TestProcess[] = [];
const tag = uniqueName('e2e').replace('-', '');

function lastLines(p: TestProcess | undefined, n = 20): string {
  return p ? p.output.slice(-n).join('\n') : '(not started)';
}

beforeAll(async () => {
  // Fail, not skip: an e2e suite that silently skips is a suite that cannot fail.
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: the browser tests drive Debian's Chromium. Install it with \`sudo apt-get install chromium\` and run them again.`);
  }
  await mkdir(ARTIFACTS, { recursive: true });
  database = await createTestDatabase();
  mailDir = await mkdtemp(path.join(os.tmpdir(), 'nanoscale-e2e-mail-'));
  mail = await startMailCatcher({ dir: mailDir });
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  const env = {
    REDIS_URL,
    DATABASE_URL: database.url,
    SMTP_URL: mail.url,
    DEV_MAIL_DIR: mailDir,
    QUEUE_NAME: uniqueName('e2e'),
    WEB_CONCURRENCY: '2',
  };
  const web = startProcess('web/main.js', { ...env, PORT: String(port), DYNO: `web${tag}.1` });
  running.push(web);
  const worker = startProcess('worker/main.js', { ...env, DYNO: `worker${tag}.1` });
  running.push(worker);
  const [launched] = await Promise.all([
    chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    }),
    waitFor(async () => web.output.filter((l) => l.includes('web: listening')).length === 2 || web.child.exitCode !== null, {
      what: `2 listening web workers; output:\n${lastLines(web)}`,
    }).then(() => {
      if (web.child.exitCode !== null) throw new Error(`web exited ${web.child.exitCode}:\n${lastLines(web)}`);
    }),
    worker.waitForLine(/worker: ready/),
  ]);
  browser = launched;
  context = await browser.newContext({ viewport: { width: 1000, height: 800 }, acceptDownloads: true });
}, TIMEOUT_MS);

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  await Promise.all(running.map((p) => p.stop()));
  await mail?.close();
  await database?.drop();
  if (mailDir) await rm(mailDir, { recursive: true, force: true });
}, TIMEOUT_MS);

/** A new tab that records every failed request but the favicon, to check nothing is broken. */
async function newPage(): Promise<{ page: Page; failures: string[] }> {
  const page = await context!.newPage();
  const failures: string[] = [];
  page.on('response', (r: Response) => {
    if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) failures.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => {
    // A download's own request ends in the download, not in the page.
    if (!r.url().includes('/file')) failures.push(`failed ${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
  });
  page.on('pageerror', (err) => failures.push(`page error: ${err.message}`));
  return { page, failures };
}

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

describe('browser: request a download, get the email, download the PDF', () => {
  it('form → status refreshes to Ready → /dev/mail → the email link → Download the PDF → a 3-page PDF', async () => {
    const { page, failures } = await newPage();
    const email = `${tag}@example.com`;
    const title = `Browser flow ${tag}`;

    await page.goto(`${baseUrl}/`);
    expect(await page.locator('h1').textContent()).toBe('Request a download');
    await page.getByLabel('Email address').fill(email);
    await page.getByLabel('Document title').fill(title);
    await page.getByLabel(/^Pages/).fill('3');
    await shot(page, 'form');
    await Promise.all([page.waitForURL(/\/downloads\/[^/]+$/), page.getByRole('button', { name: 'Make my download' }).click()]);
    const statusUrl = page.url();
    expect(await page.locator('h1').textContent()).toBe(title);

    // The page refreshes itself (<meta http-equiv="refresh">); the locator follows the reloads.
    await page
      .locator('.status .state', { hasText: /^Ready$/ })
      .waitFor({ timeout: 40_000 })
      .catch((err: Error) => {
        throw new Error(`status never showed Ready (${err.message}); worker output:\n${lastLines(running[1])}`);
      });
    expect(page.url()).toBe(statusUrl);
    expect(await page.locator('meta[http-equiv="refresh"]').count()).toBe(0);
    await shot(page, 'status-ready');

    // "Ready" is recorded before the email is sent: wait until the catcher has it on disk.
    await mail!.waitFor((m) => m.to.includes(email), 20_000);
    await page.goto(`${baseUrl}/dev/mail`);
    const row = page.locator('table.mail tbody tr', { hasText: email });
    expect(await row.count()).toBe(1);
    await shot(page, 'mail-list');
    await Promise.all([page.waitForURL(/\/dev\/mail\/[A-Za-z0-9_-]+$/), row.getByRole('link', { name: 'Your download is ready' }).click()]);

    const iframe = page.locator('iframe.mail-body');
    expect(await iframe.getAttribute('sandbox')).toBe('allow-top-navigation-by-user-activation allow-popups');
    const body = page.frameLocator('iframe.mail-body');
    await body.getByRole('heading', { name: 'Your download is ready' }).waitFor();
    await shot(page, 'mail-message');
    // <base target="_top"> plus a real click (user activation) navigates the whole tab.
    await Promise.all([page.waitForURL(statusUrl), body.getByRole('link', { name: 'Get your download' }).click()]);
    await page.locator('.status .state', { hasText: /^Ready$/ }).waitFor();

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download the PDF' }).click()]);
    expect(download.suggestedFilename()).toBe(`${title}.pdf`);
    const saved = path.join(ARTIFACTS, 'download.pdf');
    await download.saveAs(saved);
    expect(await download.failure()).toBeNull();
    const pdf = await readFile(saved);
    expect(pdf.subarray(0, 4).toString('latin1')).toBe('%PDF');
    expect(countPdfPages(pdf)).toBe(3);

    expect(failures).toEqual([]);
    await page.close();
  }, TIMEOUT_MS);

  it('form with a bad email → 422, the field message next to the field, the other values kept', async () => {
    const { page, failures } = await newPage();
    await page.goto(`${baseUrl}/`);
    await page.getByLabel('Email address').fill('not-an-email');
    await page.getByLabel('Document title').fill('Kept title');
    await page.getByLabel(/^Pages/).fill('3');
    // `novalidate`: the browser sends it as is, and the server answers.
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${baseUrl}/downloads` && r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Make my download' }).click(),
    ]);
    expect(response.status()).toBe(422);
    await page.waitForLoadState();
    expect(page.url()).toBe(`${baseUrl}/downloads`);
    expect((await page.locator('#email-error').textContent())?.trim()).toBe('Enter an email address like name@example.com.');
    expect(await page.getByLabel('Email address').getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByLabel('Email address').inputValue()).toBe('not-an-email');
    expect(await page.getByLabel('Document title').inputValue()).toBe('Kept title');
    expect(await page.locator('#form-errors li').count()).toBe(1);
    await shot(page, 'error-form');
    // The 422 is the page itself: nothing else may have failed.
    expect(failures.filter((f) => !f.startsWith(`422 POST ${baseUrl}/downloads`))).toEqual([]);
    await page.close();
  }, TIMEOUT_MS);
});
