// A capturing SMTP server (smtp-server): it accepts every message, keeps it in
// memory for tests and, when given a folder, writes it there as .eml for the
// /dev/mail pages. Used by `npm start` (no SMTP_URL) and by the tests.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { SMTPServer } from 'smtp-server';
import { simpleParser, type ParsedMail } from 'mailparser';
import { freePort } from './free-port.js';

export interface CapturedMail {
  id: string;
  to: string[];
  subject: string;
  text: string;
  html: string;
  headers: ParsedMail['headers'];
  raw: Buffer;
}

export interface MailCatcher {
  url: string;
  port: number;
  messages: CapturedMail[];
  /** Resolves with the first captured message that matches, waiting up to `timeoutMs`. */
  waitFor(match: (m: CapturedMail) => boolean, timeoutMs?: number): Promise<CapturedMail>;
  close(): Promise<void>;
}

let sequence = 0;

export async function startMailCatcher(options: { dir?: string; port?: number } = {}): Promise<MailCatcher> {
  const port = options.port ?? (await freePort());
  const messages: CapturedMail[] = [];
  const events = new EventEmitter();
  if (options.dir) await mkdir(options.dir, { recursive: true });

  const server = new SMTPServer({
    // Accepts any credentials, so an SMTP_URL with a user and password works locally too.
    authOptional: true,
    allowInsecureAuth: true,
    onAuth: (auth, _session, callback) => callback(null, { user: auth.username }),
    disabledCommands: ['STARTTLS'],
    logger: false,
    banner: 'nanoscale mail catcher',
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', async () => {
        try {
          const raw = Buffer.concat(chunks);
          const parsed = await simpleParser(raw);
          const id = `${Date.now().toString(36)}-${(sequence++).toString(36)}`;
          const message: CapturedMail = {
            id,
            to: session.envelope.rcptTo.map((r) => r.address),
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            html: typeof parsed.html === 'string' ? parsed.html : '',
            headers: parsed.headers,
            raw,
          };
          if (options.dir) await writeFile(path.join(options.dir, `${id}.eml`), raw);
          messages.push(message);
          events.emit('message', message);
          callback();
        } catch (err) {
          callback(err as Error);
        }
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  // A client that drops mid-message is its problem, not the catcher's.
  server.on('error', () => {});

  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    messages,
    waitFor(match, timeoutMs = 30_000) {
      const found = messages.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          events.off('message', listener);
          reject(new Error(`no matching mail within ${timeoutMs} ms (${messages.length} captured)`));
        }, timeoutMs);
        const listener = (m: CapturedMail) => {
          if (!match(m)) return;
          clearTimeout(timer);
          events.off('message', listener);
          resolve(m);
        };
        events.on('message', listener);
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
