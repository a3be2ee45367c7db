// Benchmark of the heavy task, renderPdf() from src/worker/render-pdf.ts: for 1, 10, 50
// and 100 pages, each size in a fresh child process (so peak RSS belongs to that size),
// a warm-up render then REPEATS timed ones; prints median ms, ms/page, bytes, bytes/page
// and peak RSS. Run on demand: `npx tsx bench/render.ts` (never part of `npm test`).
import { fork } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { countPdfPages, renderPdf } from '../src/worker/render-pdf.js';

const SIZES = [1, 10, 50, 100];
const REPEATS: Record<number, number> = { 1: 15, 10: 7, 50: 5, 100: 5 };
const FIXED_DATE = new Date('2026-12-04T00:00:00Z');

interface SizeResult {
  pages: number;
  runs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  bytes: number;
  baseRssMb: number;
  peakRssMb: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const mb = (bytes: number) => bytes / 1024 / 1024;

/** Child: render one size REPEATS times and send the result to the parent. */
async function measure(pages: number): Promise<SizeResult> {
  const baseRssMb = mb(process.memoryUsage.rss());
  const render = () => renderPdf({ title: `Benchmark, ${pages} pages`, pages, createdAt: FIXED_DATE });
  const warm = await render();
  if (countPdfPages(warm) !== pages) throw new Error(`expected ${pages} pages, got ${countPdfPages(warm)}`);
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < (REPEATS[pages] ?? 3); i++) {
    const started = performance.now();
    const pdf = await render();
    times.push(performance.now() - started);
    bytes = pdf.length;
  }
  // resourceUsage().maxRSS is in kilobytes: the peak of this child's whole life.
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  return { pages, runs: times.length, medianMs: median(times), minMs: Math.min(...times), maxMs: Math.max(...times), bytes, baseRssMb, peakRssMb };
}

function inChild(pages: number): Promise<SizeResult> {
  return new Promise((resolve, reject) => {
    // fork() reuses process.execArgv, so the child runs under tsx like this process.
    const child = fork(fileURLToPath(import.meta.url), ['--child', String(pages)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (m) => resolve(m as SizeResult));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`child for ${pages} pages exited with ${code}`));
    });
  });
}

function row(cells: Array<string | number>, widths: number[]): string {
  return cells.map((c, i) => String(c).padStart(widths[i]!)).join('  ');
}

async function main(): Promise<void> {
  const childAt = process.argv.indexOf('--child');
  if (childAt !== -1) {
    const result = await measure(Number(process.argv[childAt + 1]));
    process.send!(result, () => process.exit(0));
    return;
  }
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`render benchmark — ${new Date().toISOString()}, node ${process.version}, ${cpus().length} cores, load ${load}`);
  const results: SizeResult[] = [];
  for (const pages of SIZES) results.push(await inChild(pages));

  const widths = [5, 4, 10, 9, 9, 10, 10, 9, 12];
  console.log(row(['pages', 'runs', 'median ms', 'min ms', 'ms/page', 'bytes', 'bytes/page', 'base MB', 'peak RSS MB'], widths));
  for (const r of results) {
    console.log(
      row(
        [r.pages, r.runs, r.medianMs.toFixed(1), r.minMs.toFixed(1), (r.medianMs / r.pages).toFixed(2), r.bytes, Math.round(r.bytes / r.pages), r.baseRssMb.toFixed(0), r.peakRssMb.toFixed(0)],
        widths,
      ),
    );
  }
  console.log(`load after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
