// Tool results as text for a language model: compact JSON (numbers to a few significant digits,
// long lists cut, vectors shortened) with grids and lists of records lifted out as tables (Markdown,
// or CSV when large). The full data stays in the store; results carry the ids to fetch it.
import { LIMITS } from '../tools/limits.ts';
import { formatCell, formatNumber, renderTable } from '../tools/tables.ts';

const MAX_LIST = 50;
const MAX_NUMBERS = 16;
const MAX_STRING = 4_000;

interface Lifted {
  title: string;
  text: string;
}

type Plain = null | boolean | number | string | Plain[] | { [k: string]: Plain };

const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v);
const isPrimitive = (v: unknown) => v === null || v === undefined || ['string', 'number', 'boolean', 'bigint'].includes(typeof v);

/** {rowLabels, colLabels, <name>: number[][]} as a grid, or null. */
function asGrid(v: Record<string, unknown>): { rows: string[]; cols: string[]; key: string; values: unknown[][] } | null {
  const rows = v.rowLabels;
  const cols = v.colLabels;
  if (!Array.isArray(rows) || !Array.isArray(cols)) return null;
  for (const [key, x] of Object.entries(v)) {
    if (key === 'rowLabels' || key === 'colLabels') continue;
    if (Array.isArray(x) && x.length === rows.length && x.every((r) => Array.isArray(r) && r.length === cols.length)) {
      return { rows: rows.map(String), cols: cols.map(String), key, values: x as unknown[][] };
    }
  }
  return null;
}

/** A list of flat records with the same keys: a table. */
function asRecords(v: unknown[]): string[] | null {
  if (v.length < 3 || !v.every(isRecord)) return null;
  const keys: string[] = [];
  for (const r of v as Record<string, unknown>[]) {
    for (const [k, x] of Object.entries(r)) {
      if (x === undefined) continue;
      if (!isPrimitive(x) && !(Array.isArray(x) && x.every(isPrimitive))) return null;
      if (!keys.includes(k)) keys.push(k);
    }
  }
  return keys.length > 0 && keys.length <= 16 ? keys : null;
}

/** Grid cells (effects, scores) to 3 decimals: comparable at a glance; exact values are in the store. */
function gridCell(x: unknown): unknown {
  if (typeof x !== 'number' || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  return a >= 1e4 ? formatNumber(x, 4) : x.toFixed(3).replace(/^-0\.000$/, '0.000');
}

class Compactor {
  readonly lifted: Lifted[] = [];

  private lift(title: string, text: string): string {
    this.lifted.push({ title, text });
    return `[${title}: see below]`;
  }

  compact(v: unknown, path: string, depth = 0): Plain | undefined {
    if (v === undefined) return undefined;
    if (v === null) return null;
    if (typeof v === 'number') return Number.isFinite(v) ? Number(formatNumber(v, 5)) : formatNumber(v);
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'boolean') return v;
    if (typeof v === 'string') {
      if (v.includes('\n')) return this.lift(path || 'text', v.length > LIMITS.maxRequestBytes ? `${v.slice(0, LIMITS.maxRequestBytes)}\n…` : v);
      return v.length > MAX_STRING ? `${v.slice(0, MAX_STRING)}… (${v.length} characters)` : v;
    }
    if (depth > 12) return formatCell(v);
    if (ArrayBuffer.isView(v) || (Array.isArray(v) && v.length > MAX_NUMBERS && v.every((x) => typeof x === 'number'))) {
      return formatCell(v, { arrayItems: 8, maxCellChars: 400 });
    }
    if (Array.isArray(v)) {
      const keys = asRecords(v);
      if (keys) {
        const rows = (v as Record<string, unknown>[]).map((r) => keys.map((k) => r[k]));
        const t = renderTable(keys, rows, { maxCells: LIMITS.maxTableCells });
        return this.lift(`${path || 'table'} (${v.length} rows)`, t.text);
      }
      const shown = v.slice(0, MAX_LIST).map((x, i) => this.compact(x, `${path}[${i}]`, depth + 1) ?? null);
      if (v.length > MAX_LIST) shown.push(`… ${v.length - MAX_LIST} more (full data in the store)`);
      return shown;
    }
    if (isRecord(v)) {
      const grid = asGrid(v);
      const out: Record<string, Plain> = {};
      if (grid) {
        const t = renderTable(['', ...grid.cols], grid.values.map((r, i) => [grid.rows[i], ...r.map(gridCell)]), { maxCells: LIMITS.maxTableCells });
        out[grid.key] = this.lift(`${path || 'grid'} (${grid.key}, ${grid.rows.length} x ${grid.cols.length})`, t.text);
      }
      for (const [k, x] of Object.entries(v)) {
        if (grid && (k === 'rowLabels' || k === 'colLabels' || k === grid.key)) continue;
        const c = this.compact(x, path ? `${path}.${k}` : k, depth + 1);
        if (c !== undefined) out[k] = c;
      }
      return out;
    }
    return String(v);
  }
}

/** JSON with short arrays and objects kept on one line. */
export function pretty(v: Plain, indent = ''): string {
  const flat = JSON.stringify(v);
  if (v === null || typeof v !== 'object' || flat.length + indent.length <= 100) return flat;
  const inner = `${indent}  `;
  if (Array.isArray(v)) return `[\n${v.map((x) => inner + pretty(x, inner)).join(',\n')}\n${indent}]`;
  return `{\n${Object.entries(v).map(([k, x]) => `${inner}${JSON.stringify(k)}: ${pretty(x, inner)}`).join(',\n')}\n${indent}}`;
}

/** A tool's result as the text of an MCP tool result. */
export function formatToolResult(result: unknown): string {
  if (typeof result === 'string') return result;
  const c = new Compactor();
  const top = c.compact(result, '');
  // A result that is only lifted text (e.g. {markdown}) reads best as that text alone.
  if (isRecord(top) && Object.keys(top).length === 1 && c.lifted.length === 1 && typeof Object.values(top)[0] === 'string' && String(Object.values(top)[0]).endsWith('see below]')) {
    return c.lifted[0].text;
  }
  const parts = [pretty(top ?? null)];
  for (const l of c.lifted) parts.push(`${l.title}:\n${l.text}`);
  return parts.join('\n\n');
}
