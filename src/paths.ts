// Folders the code reads at run time, found relative to this file so they resolve
// the same from src/ (tests) and dist/ (production).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const VIEWS_DIR = path.join(ROOT_DIR, 'views');
export const MIGRATIONS_DIR = path.join(ROOT_DIR, 'prisma', 'migrations');
