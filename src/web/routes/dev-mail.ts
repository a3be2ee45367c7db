// Development only (`npm start`): the mail the local SMTP catcher captured, listed
// and rendered like Rails' letter_opener, so a person can click the link in the
// "ready" email. Never mounted in production; mailparser is loaded only here.
import { Router } from 'express';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { notFound } from '../http-error.js';

const MESSAGE_ID = /^[A-Za-z0-9_-]+$/;

async function parse(file: string) {
  const { simpleParser } = await import('mailparser');
  return simpleParser(await readFile(file));
}

export function devMailRouter(dir: string): Router {
  const router = Router();

  router.get('/', async (_req, res) => {
    const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.eml')).sort().reverse();
    const messages = await Promise.all(
      names.slice(0, 100).map(async (name) => {
        const mail = await parse(path.join(dir, name));
        return { id: name.slice(0, -4), to: mail.to ? [mail.to].flat().map((a) => a.text).join(', ') : '', subject: mail.subject ?? '', date: mail.date };
      }),
    );
    res.render('dev/mail-index', { messages });
  });

  router.get('/:id', async (req, res) => {
    const id = req.params.id;
    if (!MESSAGE_ID.test(id)) throw notFound('No such message.');
    const mail = await parse(path.join(dir, `${id}.eml`)).catch(() => null);
    if (!mail) throw notFound('No such message.');
    res.render('dev/mail-message', {
      message: {
        to: mail.to ? [mail.to].flat().map((a) => a.text).join(', ') : '',
        from: mail.from?.text ?? '',
        subject: mail.subject ?? '',
        date: mail.date,
        html: typeof mail.html === 'string' ? mail.html : null,
        text: mail.text ?? '',
      },
    });
  });

  return router;
}
