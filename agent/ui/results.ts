// Reading MCP tool results for display. The server sends one text block per result: compact JSON
// whose grids and record lists are lifted out as Markdown/CSV tables after it ("[title: see below]"
// in the JSON, then "title:\n<table>"). Structured content, when a server sends it, is used first.
// From either we take: scalar fields for a one-line summary, tables, and grids to draw as heatmaps.

export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  /** Rows cut by the server ("… N more rows not shown"). */
  note?: string;
}

export interface Grid {
  title: string;
  rowLabels: string[];
  colLabels: string[];
  values: (number | null)[][];
  rowAxis?: string;
  colAxis?: string;
  /** Fixed scale ends (e.g. 0 and 1 for probabilities). */
  min?: number;
  max?: number;
}

export interface ParsedResult {
  text: string;
  /** The JSON head of the result (placeholders where tables were lifted), or null for plain text. */
  json: unknown;
  /** Lifted sections in order, by title. */
  sections: { title: string; text: string }[];
}

const PLACEHOLDER = /"\[([^"]+?): see below\]"/g;

export function parseToolText(text: string): ParsedResult {
  const titles = [...text.matchAll(PLACEHOLDER)].map((m) => m[1]);
  // Where the lifted sections start: the first "\n\n<title>:\n" after the JSON head.
  let headEnd = text.length;
  const positions: { title: string; at: number }[] = [];
  let from = 0;
  for (const t of titles) {
    const marker = `\n\n${t}:\n`;
    const at = text.indexOf(marker, from);
    if (at < 0) continue;
    positions.push({ title: t, at });
    if (positions.length === 1) headEnd = at;
    from = at + marker.length;
  }
  let json: unknown = null;
  const head = text.slice(0, headEnd).trim();
  if (head.startsWith('{') || head.startsWith('[')) {
    try {
      json = JSON.parse(head);
    } catch {
      json = null;
    }
  }
  const sections = positions.map((p, k) => {
    const start = p.at + `\n\n${p.title}:\n`.length;
    const end = k + 1 < positions.length ? positions[k + 1].at : text.length;
    return { title: p.title, text: text.slice(start, end).replace(/\s+$/, '') };
  });
  return { text, json, sections };
}

function splitMdRow(line: string): string[] {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && (s[i + 1] === '|' || s[i + 1] === '\\')) {
      cur += s[i + 1];
      i++;
    } else if (s[i] === '|') {
      cells.push(cur.trim());
      cur = '';
    } else cur += s[i];
  }
  cells.push(cur.trim());
  return cells;
}

function splitCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '"' && text[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') q = false;
      else cur += c;
    } else if (c === '"' && cur === '') q = true;
    else if (c === ',') {
      row.push(cur);
      cur = '';
    } else if (c === '\n') {
      row.push(cur);
      rows.push(row);
      row = [];
      cur = '';
    } else if (c !== '\r') cur += c;
  }
  if (cur !== '' || row.length) {
    row.push(cur);
    rows.push(row);
  }
  return rows;
}

/** A Markdown or CSV table (as the server renders them) into columns and rows. */
export function parseTable(text: string, title = ''): Table | null {
  const lines = text.split('\n');
  let note: string | undefined;
  while (lines.length && /^… \d+ more rows? not shown/.test(lines[lines.length - 1])) note = lines.pop();
  if (lines.length === 0) return null;
  if (lines[0].trim().startsWith('|')) {
    if (lines.length < 2 || !/^\s*\|?\s*:?-+/.test(lines[1])) return null;
    return { title, columns: splitMdRow(lines[0]), rows: lines.slice(2).filter((l) => l.trim().startsWith('|')).map(splitMdRow), note };
  }
  const rows = splitCsv(lines.join('\n'));
  if (rows.length < 2 || rows[0].length < 2 || rows.some((r) => r.length !== rows[0].length)) return null;
  return { title, columns: rows[0], rows: rows.slice(1), note };
}

export function toNumber(s: string): number {
  const t = s.trim();
  if (t === '' || t === 'null') return Number.NaN;
  if (/^-?(Inf|∞)$/.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
  return Number(t);
}

const GRID_TITLE = /\(([\w.]+), (\d+) x (\d+)\)$/;

/** Axis names from labels like L0 / H3 / P5 / E2. */
function axisOf(labels: string[]): string | undefined {
  if (labels.length && labels.every((l) => /^L\d+$/.test(l))) return 'layer';
  if (labels.length && labels.every((l) => /^H\d+$/.test(l))) return 'head';
  if (labels.length && labels.every((l) => /^E\d+$/.test(l))) return 'expert';
  if (labels.length && labels.every((l) => /^P-?\d+/.test(l))) return 'position';
  if (labels.length && labels.every((l) => /^L\d+\.H\d+$/.test(l))) return 'head';
  return undefined;
}

const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const isNumMatrix = (v: unknown): v is number[][] => Array.isArray(v) && v.length > 0 && v.every((r) => Array.isArray(r) && r.every((x) => typeof x === 'number' || x === null));

/** Grids in structured content: {rowLabels, colLabels, <key>: number[][]} and attention matrices {tokens, rows}. */
function structuredGrids(v: unknown, path: string, out: Grid[], depth = 0): void {
  if (depth > 6 || !v || typeof v !== 'object') return;
  if (Array.isArray(v)) {
    v.slice(0, 20).forEach((x, i) => structuredGrids(x, `${path}[${i}]`, out, depth + 1));
    return;
  }
  const r = v as Record<string, unknown>;
  if (Array.isArray(r.rowLabels) && Array.isArray(r.colLabels)) {
    for (const [k, x] of Object.entries(r)) {
      if (k !== 'rowLabels' && k !== 'colLabels' && isNumMatrix(x) && x.length === r.rowLabels.length) {
        const rows = r.rowLabels.map(String);
        const cols = r.colLabels.map(String);
        out.push({ title: `${path || 'grid'} (${k})`, rowLabels: rows, colLabels: cols, values: x, rowAxis: axisOf(rows), colAxis: axisOf(cols) });
      }
    }
  }
  const m = attentionMatrix(r);
  if (m) out.push(m);
  for (const [k, x] of Object.entries(r)) if (k !== 'matrix' || !m) structuredGrids(x, path ? `${path}.${k}` : k, out, depth + 1);
}

/** attention_patterns' matrix {head, tokens, rows} as a query x key grid (nothing above the diagonal). */
function attentionMatrix(r: Record<string, unknown>): Grid | null {
  const m = r.matrix;
  if (!isRecord(m) || !Array.isArray(m.tokens) || !isNumMatrix(m.rows)) return null;
  const tokens = m.tokens.map(String);
  const offset = typeof m.offset === 'number' ? m.offset : 0;
  const labels = tokens.map((t, i) => `${offset + i}:${t}`);
  const values = (m.rows as number[][]).map((row, q) => tokens.map((_, k) => (k <= q ? (row[k] ?? null) : null)));
  return { title: `attention pattern of ${String(m.head)}${typeof m.prompt === 'number' ? ` on prompt ${m.prompt}` : ''}`, rowLabels: labels, colLabels: labels, values, rowAxis: 'query', colAxis: 'key' };
}

/** Every grid in a result: from structured content when given, else from the lifted tables and JSON. */
export function gridsOf(parsed: ParsedResult, structured?: unknown): Grid[] {
  const out: Grid[] = [];
  if (structured !== undefined && structured !== null) {
    structuredGrids(structured, '', out);
    return out;
  }
  for (const s of parsed.sections) {
    const m = GRID_TITLE.exec(s.title);
    if (!m) continue;
    const t = parseTable(s.text, s.title);
    if (!t || t.columns.length < 2) continue;
    const rowLabels = t.rows.map((r) => r[0]);
    const colLabels = t.columns.slice(1);
    const values = t.rows.map((r) => r.slice(1).map(toNumber));
    const name = s.title.replace(GRID_TITLE, '').trim();
    out.push({ title: `${name || 'grid'} (${m[1]})`, rowLabels, colLabels, values, rowAxis: axisOf(rowLabels), colAxis: axisOf(colLabels) });
  }
  if (isRecord(parsed.json)) {
    const m = attentionMatrix(parsed.json);
    if (m) out.push(m);
  }
  return out;
}

/** Tables of a result that are not grids (e.g. "top (10 rows)", SQL results). */
export function tablesOf(parsed: ParsedResult): Table[] {
  const out: Table[] = [];
  for (const s of parsed.sections) {
    if (GRID_TITLE.test(s.title)) continue;
    const t = parseTable(s.text, s.title);
    if (t) out.push(t);
  }
  return out;
}

/** Scalar fields of the JSON head worth a one-line summary (ids, metrics, counts). */
export function scalarsOf(parsed: ParsedResult, max = 10): [string, string][] {
  const out: [string, string][] = [];
  const walk = (v: unknown, path: string, depth: number) => {
    if (out.length >= max || depth > 2) return;
    if (typeof v === 'string') {
      if (/: see below\]$/.test(v) || v.length > 80 || v.includes('\n')) return;
      out.push([path, v]);
    } else if (typeof v === 'number' || typeof v === 'boolean') out.push([path, typeof v === 'number' ? fmt(v) : String(v)]);
    else if (isRecord(v)) for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k, depth + 1);
    else if (Array.isArray(v) && v.length && v.length <= 4 && v.every((x) => typeof x === 'string' && x.length < 30 && !/^run_/.test(x))) out.push([path, v.join(', ')]);
  };
  walk(parsed.json, '', 0);
  return out;
}

function fmt(x: number): string {
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e7)) return x.toExponential(2);
  return String(Number(x.toPrecision(4)));
}

/** Long string fields of the JSON head (e.g. Markdown, generations) and plain-text results. */
export function textBlocksOf(parsed: ParsedResult): { title: string; text: string }[] {
  if (parsed.json === null) return [{ title: '', text: parsed.text }];
  const out: { title: string; text: string }[] = [];
  for (const s of parsed.sections) if (!parseTable(s.text)) out.push(s);
  return out;
}
