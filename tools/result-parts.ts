// A tool result split into the parts every face shows: scalar values, lists, long texts, tables
// (lists of records) and labelled grids. The split depends only on the result's shape, never on its
// size, so the MCP text rendering, the terminal chat and the transcripts lay out a result the same
// way whether it has one row or a thousand. Paths name where a part sits in the structured result
// ("grid", "roles", "top1ByPrompt.sites"), so a reader can fetch the full part from structuredContent.
import type { Grid } from './output.ts';

export type Scalar = string | number | boolean | null;

export type ResultPart =
  | { kind: 'value'; path: string; value: Scalar }
  | { kind: 'list'; path: string; values: Scalar[] }
  | { kind: 'text'; path: string; text: string }
  | { kind: 'table'; path: string; columns: string[]; rows: unknown[][] }
  | { kind: 'grid'; path: string; grid: Grid };

const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const isScalar = (v: unknown): v is Scalar => v === null || ['string', 'number', 'boolean'].includes(typeof v);

/** {rows: {name, labels}, cols: {name, labels}, values}: the grid shape of tools/output.ts. */
export function isGrid(v: unknown): v is Grid {
  if (!isRecord(v) || !isRecord(v.rows) || !isRecord(v.cols) || !Array.isArray(v.values)) return false;
  return typeof v.rows.name === 'string' && Array.isArray(v.rows.labels) && typeof v.cols.name === 'string' && Array.isArray(v.cols.labels);
}

/** {columns: [{name, type}], rows: unknown[][]}: a table given column-wise (query_activations). */
function isColumnTable(v: unknown): v is { columns: { name: string }[]; rows: unknown[][] } {
  return isRecord(v) && Array.isArray(v.columns) && v.columns.every((c) => isRecord(c) && typeof c.name === 'string')
    && Array.isArray(v.rows) && v.rows.every(Array.isArray);
}

/** A record's fields as columns: nested records of scalars become dotted columns (scores.induction). */
function flatten(r: Record<string, unknown>, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [k, v] of Object.entries(r)) {
    if (v === undefined) continue;
    const key = prefix ? `${prefix}.${k}` : k;
    if (isRecord(v) && !isGrid(v) && Object.values(v).every((x) => x === undefined || isScalar(x))) flatten(v, key, out);
    else out[key] = v;
  }
  return out;
}

/** The parts of a result, in the order of its fields. */
export function resultParts(result: unknown): ResultPart[] {
  const parts: ResultPart[] = [];
  const walk = (v: unknown, path: string): void => {
    if (v === undefined) return;
    if (typeof v === 'string' && v.includes('\n')) parts.push({ kind: 'text', path, text: v });
    else if (isScalar(v)) parts.push({ kind: 'value', path, value: v });
    else if (isGrid(v)) parts.push({ kind: 'grid', path, grid: v });
    else if (isColumnTable(v)) {
      parts.push({ kind: 'table', path: path ? `${path}.rows` : 'rows', columns: v.columns.map((c) => c.name), rows: v.rows });
      for (const [k, x] of Object.entries(v)) if (k !== 'columns' && k !== 'rows') walk(x, path ? `${path}.${k}` : k);
    } else if (Array.isArray(v)) {
      if (v.length > 0 && v.every(isRecord)) {
        const flat = v.map((r) => flatten(r));
        const columns: string[] = [];
        for (const r of flat) for (const k of Object.keys(r)) if (!columns.includes(k)) columns.push(k);
        parts.push({ kind: 'table', path, columns, rows: flat.map((r) => columns.map((c) => r[c])) });
      } else {
        parts.push({ kind: 'list', path, values: v.map((x) => (isScalar(x) ? x : JSON.stringify(x))) });
      }
    } else if (isRecord(v)) {
      for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
    } else parts.push({ kind: 'value', path, value: String(v) });
  };
  walk(result, '');
  return parts;
}

/** Numbers for reading: integers as they are, others to 6 significant digits (full precision stays in the structured result). */
export function formatValue(x: unknown): string {
  if (x === null || x === undefined) return '–';
  if (typeof x === 'number') {
    if (!Number.isFinite(x)) return String(x);
    if (Number.isInteger(x)) return String(x);
    const a = Math.abs(x);
    if (a !== 0 && (a < 1e-4 || a >= 1e9)) return x.toExponential(5).replace(/\.?0+e/, 'e');
    return String(Number(x.toPrecision(6)));
  }
  if (typeof x === 'string' || typeof x === 'boolean') return String(x);
  if (Array.isArray(x)) return `[${x.map(formatValue).join(', ')}]`;
  if (isRecord(x)) return `{${Object.entries(x).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${formatValue(v)}`).join(', ')}}`;
  return String(x);
}
