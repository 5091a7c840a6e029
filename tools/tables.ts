// Tables as text for language models and terminals: Markdown for small tables, CSV for large ones.
// Cells are shortened (numbers to a few significant digits, long vectors to their first values).

export type TableFormat = 'markdown' | 'csv';

export interface TableOptions {
  format?: TableFormat | 'auto';
  /** Significant digits of numbers (default 4). */
  digits?: number;
  /** Elements of an array cell shown before "…" (default 8). */
  arrayItems?: number;
  /** Cells shown at most; rows beyond are cut with a note (default 5000). */
  maxCells?: number;
  /** Characters of one string cell (default 200). */
  maxCellChars?: number;
}

export function formatNumber(x: number, digits = 4): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'NaN' : x > 0 ? 'Inf' : '-Inf';
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e9)) return x.toExponential(digits - 1);
  return String(Number(x.toPrecision(digits)));
}

export function formatCell(v: unknown, opts: TableOptions = {}): string {
  const digits = opts.digits ?? 4;
  const items = opts.arrayItems ?? 8;
  const maxChars = opts.maxCellChars ?? 200;
  let s: string;
  if (v === null || v === undefined) s = '';
  else if (typeof v === 'number') s = formatNumber(v, digits);
  else if (typeof v === 'bigint') s = v.toString();
  else if (typeof v === 'string') s = v;
  else if (typeof v === 'boolean') s = String(v);
  else if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    const arr = Array.from(v as ArrayLike<unknown>);
    const shown = arr.slice(0, items).map((x) => formatCell(x, { ...opts, maxCellChars: 40 }));
    s = `[${shown.join(', ')}${arr.length > items ? `, … (${arr.length} values)` : ''}]`;
  } else s = JSON.stringify(v);
  return s.length > maxChars ? `${s.slice(0, maxChars - 1)}…` : s;
}

const mdEscape = (s: string) => s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
const csvEscape = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/**
 * Renders columns x rows. 'auto' picks Markdown up to 400 cells and 12 columns, CSV beyond.
 * Returns the text and how many rows were shown.
 */
export function renderTable(columns: readonly string[], rows: readonly (readonly unknown[])[], opts: TableOptions = {}): { text: string; format: TableFormat; shownRows: number } {
  const maxCells = opts.maxCells ?? 5000;
  const cols = Math.max(1, columns.length);
  const shownRows = Math.min(rows.length, Math.max(1, Math.floor(maxCells / cols)));
  const format: TableFormat = opts.format && opts.format !== 'auto'
    ? opts.format
    : rows.length * cols <= 400 && columns.length <= 12 ? 'markdown' : 'csv';
  const cells = rows.slice(0, shownRows).map((r) => columns.map((_, j) => formatCell(r[j], opts)));
  let text: string;
  if (format === 'markdown') {
    const head = `| ${columns.map(mdEscape).join(' | ')} |`;
    const sep = `|${columns.map(() => '---').join('|')}|`;
    text = [head, sep, ...cells.map((r) => `| ${r.map(mdEscape).join(' | ')} |`)].join('\n');
  } else {
    text = [columns.map(csvEscape).join(','), ...cells.map((r) => r.map(csvEscape).join(','))].join('\n');
  }
  if (shownRows < rows.length) text += `\n… ${rows.length - shownRows} more rows not shown`;
  return { text, format, shownRows };
}
