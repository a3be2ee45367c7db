// The heavy task: a real PDF, one page per unit of size, made with pdfkit.
// Each page draws a figure computed point by point (thousands of trigonometric
// samples) so the work is genuine CPU, and the loop yields between pages so
// BullMQ's lock renewal and progress updates keep running while it works.
import PDFDocument from 'pdfkit';
import { setImmediate as nextTurn } from 'node:timers/promises';

export interface RenderOptions {
  title: string;
  pages: number;
  /** Called after each page with the share done, 0..100. */
  onProgress?: (percent: number) => void | Promise<void>;
  /** Fixed date for reproducible output (tests); default now. */
  createdAt?: Date;
}

const SAMPLES_PER_PAGE = 2_500;

export async function renderPdf(options: RenderOptions): Promise<Buffer> {
  const doc = new PDFDocument({
    autoFirstPage: false,
    size: 'A4',
    margin: 56,
    info: { Title: options.title, Creator: 'nanoscale', CreationDate: options.createdAt ?? new Date() },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });

  for (let page = 1; page <= options.pages; page++) {
    doc.addPage();
    drawPage(doc, options.title, page, options.pages);
    await options.onProgress?.(Math.floor((page / options.pages) * 100));
    await nextTurn();
  }
  doc.end();
  return done;
}

function drawPage(doc: PDFKit.PDFDocument, title: string, page: number, pages: number): void {
  const { width, height } = doc.page;
  doc.fontSize(18).fillColor('#1f2328').text(title, { width: width - 112, lineBreak: true, height: 48, ellipsis: true });
  doc.fontSize(10).fillColor('#59636e').text(`Page ${page} of ${pages}`);

  // A harmonograph: a damped sum of two pendulums per axis, different on every page.
  const cx = width / 2;
  const cy = height / 2 + 20;
  const r = Math.min(width, height) / 3;
  const f1 = 2 + (page % 5) * 0.01;
  const f2 = 3 + (page % 7) * 0.013;
  const p1 = (page * Math.PI) / 17;
  doc.lineWidth(0.4).strokeColor(`hsl(${(page * 47) % 360}, 60%, 40%)`);
  for (let i = 0; i <= SAMPLES_PER_PAGE; i++) {
    const t = (i / SAMPLES_PER_PAGE) * 60;
    const decay = Math.exp(-0.03 * t);
    const x = cx + r * decay * (Math.sin(f1 * t + p1) + Math.sin(f2 * t) * 0.5) / 1.5;
    const y = cy + r * decay * (Math.sin(f2 * t + p1 / 2) + Math.sin(f1 * t + 1) * 0.5) / 1.5;
    if (i === 0) doc.moveTo(x, y);
    else doc.lineTo(x, y);
  }
  doc.stroke();
}

/** Counts the pages of a PDF made by pdfkit (page objects are not compressed). */
export function countPdfPages(pdf: Buffer): number {
  return pdf.toString('latin1').match(/\/Type \/Page\b(?!s)/g)?.length ?? 0;
}
