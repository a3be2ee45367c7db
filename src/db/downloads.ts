// Download rows: creation with an unguessable link token, and lookups by token.
// The token is 256 random bits (base64url); pages find rows by its sha256, so no
// lookup ever compares the token itself (no timing oracle on the secret).
import { createHash, randomBytes } from 'node:crypto';
import type { PrismaClient } from '../generated/prisma/client.js';

const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashToken(token: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHash('sha256').update(token).digest());
}

/** A token that cannot be one of ours is rejected before any query. */
export function isWellFormedToken(token: string): boolean {
  return TOKEN_PATTERN.test(token);
}

export interface NewDownload {
  email: string;
  title: string;
  pages: number;
  origin: string;
}

export async function createDownload(db: PrismaClient, input: NewDownload, options: { now: Date; ttlMs: number }) {
  const token = newToken();
  return db.download.create({
    data: {
      ...input,
      token,
      tokenHash: hashToken(token),
      // Expiry counts from the request; the cleanup removes the file after it.
      expiresAt: new Date(options.now.getTime() + options.ttlMs),
    },
  });
}

/** The row for a link token, without the file bytes; null when unknown or malformed. */
export async function findDownloadByToken(db: PrismaClient, token: string) {
  if (!isWellFormedToken(token)) return null;
  return db.download.findUnique({ where: { tokenHash: hashToken(token) } });
}

export function downloadLink(download: { origin: string; token: string }): string {
  return new URL(`/downloads/${download.token}`, download.origin).toString();
}
