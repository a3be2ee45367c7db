// Sends the two emails a download can cause, over SMTP with nodemailer.
// Bodies are EJS templates in views/mail/ (user text is escaped there); the
// Message-ID is derived from the download, so a resend is recognisable as one.
import ejs from 'ejs';
import nodemailer, { type Transporter } from 'nodemailer';
import path from 'node:path';
import { VIEWS_DIR } from '../paths.js';

export interface Mailer {
  sendReady(download: MailDownload, link: string): Promise<void>;
  sendFailed(download: MailDownload, link: string): Promise<void>;
  close(): void;
}

export interface MailDownload {
  id: string;
  email: string;
  title: string;
  pages: number;
  expiresAt: Date;
}

/**
 * Heroku SMTP add-ons use STARTTLS on 587 (smtp://) or TLS on 465 (smtps://). Pooled:
 * each email reusing an open connection saves a handshake (TLS included), which
 * costs more than rendering a small PDF (bench/README.md).
 */
export function createTransport(smtpUrl: string, maxConnections = 2): Transporter {
  return nodemailer.createTransport({ url: smtpUrl, pool: true, maxConnections });
}

async function render(name: string, data: object): Promise<string> {
  return ejs.renderFile(path.join(VIEWS_DIR, 'mail', name), data, { async: false });
}

export function createMailer(options: { transport: Transporter; from: string; messageIdDomain?: string }): Mailer {
  const domain = options.messageIdDomain ?? 'nanoscale.invalid';
  async function send(kind: 'ready' | 'failed', download: MailDownload, link: string, subject: string) {
    const data = { download, link };
    const [html, text] = await Promise.all([render(`${kind}.html.ejs`, data), render(`${kind}.text.ejs`, data)]);
    await options.transport.sendMail({
      from: options.from,
      to: download.email,
      subject,
      html,
      text,
      messageId: `<download-${download.id}-${kind}@${domain}>`,
      headers: { 'X-Nanoscale-Download': download.id },
    });
  }
  return {
    sendReady: (d, link) => send('ready', d, link, 'Your download is ready'),
    sendFailed: (d, link) => send('failed', d, link, 'Your download could not be made'),
    close: () => options.transport.close(),
  };
}
