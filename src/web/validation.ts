// The download form's rules, in one zod schema, with messages written for people.
import { z } from 'zod';

export interface DownloadForm {
  email: string;
  title: string;
  pages: number;
}

export type FieldErrors = Partial<Record<keyof DownloadForm, string>>;

// Control characters (CR/LF included) never belong in a title or an address.
const CONTROL = /[\u0000-\u001f\u007f]/;
// A title is plain text: "A < B" is fine, a tag is never what a person meant.
const TAG = /<\/?[a-z!?][^>]*>/i;

export function downloadFormSchema(maxPages: number) {
  return z.object({
    email: z
      .string({ error: 'Enter your email address.' })
      .trim()
      .min(1, 'Enter your email address.')
      .max(254, 'That email address is too long (254 characters at most).')
      .refine((v) => !CONTROL.test(v), 'That email address contains characters that are not allowed.')
      .pipe(z.email({ error: 'Enter an email address like name@example.com.' })),
    title: z
      .string({ error: 'Give your document a title.' })
      .trim()
      .min(1, 'Give your document a title.')
      .max(120, 'The title is too long (120 characters at most).')
      .refine((v) => !CONTROL.test(v), 'The title contains characters that are not allowed.')
      .refine((v) => !TAG.test(v), 'The title cannot contain HTML tags.'),
    pages: z.coerce
      .number({ error: `Choose a number of pages from 1 to ${maxPages}.` })
      .int(`Choose a whole number of pages from 1 to ${maxPages}.`)
      .min(1, `Choose a number of pages from 1 to ${maxPages}.`)
      .max(maxPages, `Choose a number of pages from 1 to ${maxPages}.`),
  });
}

// Built once per limit: building a zod schema costs more than using it.
const schemas = new Map<number, ReturnType<typeof downloadFormSchema>>();

export type ValidationResult = { ok: true; value: DownloadForm } | { ok: false; errors: FieldErrors };

export function validateDownloadForm(body: unknown, maxPages: number): ValidationResult {
  const input = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  // A field sent twice arrives as an array: that is not a value a person typed.
  const single = Object.fromEntries(
    (['email', 'title', 'pages'] as const).map((k) => [k, typeof input[k] === 'string' ? input[k] : input[k] === undefined ? undefined : null]),
  );
  const pagesRaw = single.pages;
  let schema = schemas.get(maxPages);
  if (!schema) schemas.set(maxPages, (schema = downloadFormSchema(maxPages)));
  const parsed = schema.safeParse({ ...single, pages: pagesRaw === '' ? undefined : pagesRaw });
  if (parsed.success) return { ok: true, value: parsed.data };
  const errors: FieldErrors = {};
  for (const issue of parsed.error.issues) {
    const field = issue.path[0] as keyof DownloadForm;
    errors[field] ??= issue.message;
  }
  return { ok: false, errors };
}
