// Tool results for display, read from the typed result (structuredContent) the server sends with
// every tool result; the text part is only for language models. The result is split into parts by
// shape (tools/result-parts.ts, the same split the MCP text rendering uses): scalar fields for a
// summary line, labelled grids to draw as heatmaps, lists of records as tables (one row or many),
// and long texts.
import type { Grid as OutputGrid } from '../../tools/output.ts';
import { formatValue, resultParts } from '../../tools/result-parts.ts';

export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
}

export interface Grid {
  title: string;
  rowLabels: string[];
  colLabels: string[];
  values: (number | null)[][];
  rowAxis?: string;
  colAxis?: string;
  /** Where the grid sits in the tool's result ("grid", "matrix.grid"); absent for grids a command built. */
  path?: string;
  /** What the values are ("normalised effects"), for the colour legend; from the tool's output schema. */
  value?: string;
  /** Fixed scale ends (e.g. 0 and 1 for probabilities). */
  min?: number;
  max?: number;
}

export interface ResultView {
  /** [path, value] of scalar fields and short lists, in field order. */
  scalars: [string, string][];
  grids: Grid[];
  tables: Table[];
  texts: { title: string; text: string }[];
}

/** A labelled output grid as a heatmap grid: axes named by the result, attention on a 0..1 scale. */
export function displayGrid(path: string, g: OutputGrid): Grid {
  const attention = g.rows.name === 'query' && g.cols.name === 'key';
  return {
    title: `${path} (${g.rows.name} × ${g.cols.name})`, path,
    rowLabels: g.rows.labels, colLabels: g.cols.labels, values: g.values, rowAxis: g.rows.name, colAxis: g.cols.name,
    ...(attention ? { min: 0, max: 1 } : {}),
  };
}

const ID = /^(exp|run)_[A-Za-z0-9]+$/;

/** The display view of a typed result (empty for a result that is not an object). */
export function resultView(structured: unknown): ResultView {
  const view: ResultView = { scalars: [], grids: [], tables: [], texts: [] };
  if (!structured || typeof structured !== 'object') return view;
  for (const p of resultParts(structured)) {
    switch (p.kind) {
      case 'value':
        view.scalars.push([p.path, formatValue(p.value)]);
        break;
      case 'list':
        // Id lists are in the experiment; other short lists read well inline.
        if (p.values.length && !p.values.every((v) => typeof v === 'string' && ID.test(v))) {
          view.scalars.push([p.path, p.values.length <= 8 ? p.values.map(formatValue).join(', ') : `${p.values.slice(0, 8).map(formatValue).join(', ')}, … (${p.values.length})`]);
        }
        break;
      case 'text':
        view.texts.push({ title: p.path, text: p.text });
        break;
      case 'grid':
        view.grids.push(displayGrid(p.path, p.grid));
        break;
      case 'table':
        view.tables.push({ title: p.path, columns: p.columns, rows: formatColumns(p.rows) });
        break;
    }
  }
  return view;
}

/**
 * Table cells for reading: a column of fractional numbers gets one number of decimals (at least 3,
 * more when even its largest value is small): 1.225, -0.267, -0.002 rather than 1.22498, -0.26697,
 * -0.00171678. The typed result and the session log keep full precision.
 */
export function formatColumns(rows: unknown[][]): string[][] {
  const width = Math.max(0, ...rows.map((r) => r.length));
  const decimals = Array.from({ length: width }, (_, c) => {
    const xs = rows.map((r) => r[c]).filter((x) => x !== null && x !== undefined);
    if (!xs.length || !xs.every((x) => typeof x === 'number' && Number.isFinite(x)) || xs.every((x) => Number.isInteger(x))) return null;
    const max = Math.max(...xs.map((x) => Math.abs(x as number)));
    if (max === 0) return 0;
    return max >= 100 ? 1 : Math.min(6, Math.max(3, 2 - Math.floor(Math.log10(max))));
  });
  return rows.map((r) => r.map((x, c) => {
    const d = decimals[c];
    if (d === null || typeof x !== 'number') return formatValue(x);
    const t = x.toFixed(d);
    return /^-0\.?0*$/.test(t) ? t.slice(1) : t;
  }));
}

/** Every grid of a typed result, as heatmaps. */
export const gridsOf = (structured: unknown): Grid[] => resultView(structured).grids;

/**
 * What the field at `path` of a tool's result holds, from its output schema (JSON Schema, as MCP
 * lists it): the first clause of the field's description ("normalised effects (patched - ...": "normalised effects").
 */
export function fieldName(schema: unknown, path: string): string | undefined {
  let node = schema as { type?: string; properties?: Record<string, unknown>; items?: unknown; description?: string } | undefined;
  for (const seg of path.split('.')) {
    while (node?.type === 'array') node = node.items as typeof node;
    if (/^\d+$/.test(seg)) continue;
    node = node?.properties?.[seg] as typeof node;
  }
  const d = node?.description?.split(/ \(|[;:,]\s/)[0].trim();
  return d || undefined;
}

/** A grid titled for a reader: the tool, what the values are, and the axes ("patch_activations: normalised effects (layer × head)"). */
export function titledGrid(g: Grid, tool: string, schema?: unknown): Grid {
  if (g.path === undefined || g.title.startsWith(`${tool}: `)) return g;
  const what = g.value ?? fieldName(schema, g.path);
  if (!what) return { ...g, title: `${tool}: ${g.title}` };
  return { ...g, value: what, title: `${tool}: ${what}${g.rowAxis && g.colAxis ? ` (${g.rowAxis} × ${g.colAxis})` : ''}` };
}
