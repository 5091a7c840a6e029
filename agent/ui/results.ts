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
    title: `${path} (${g.rows.name} x ${g.cols.name})`,
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
        view.tables.push({ title: p.path, columns: p.columns, rows: p.rows.map((r) => r.map(formatValue)) });
        break;
    }
  }
  return view;
}

/** Every grid of a typed result, as heatmaps. */
export const gridsOf = (structured: unknown): Grid[] => resultView(structured).grids;
