// Keeps secrets out of logs, pages and errors: URLs lose their passwords, and the
// logger drops the fields that could hold one.

/** `redis://h:secret@host:6379` → `redis://h:***@host:6379`; anything unparsable → `***`. */
export function redactUrl(value: string): string {
  try {
    const u = new URL(value);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '***';
  }
}

/** Replaces every URL credential inside a free text (error messages quote URLs). */
export function redactText(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/\s@]*:)[^@\s/]+@/gi, '$1***@');
}
