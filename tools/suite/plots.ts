// Plots as SVG files, rendered headless from Vega-Lite specs (vega's SVG renderer needs no canvas).
// Every chart names both axes; colour scales are diverging only when the data has both signs.
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Plot } from './types.ts';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** An SVG as a PNG (resvg, system fonts): what a reader's image viewer shows. Vega's SVGs paint their own white background. */
export function renderPng(svg: string): { png: Buffer; width: number; height: number; pixels: Buffer } {
  const img = new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render();
  return { png: img.asPng(), width: img.width, height: img.height, pixels: img.pixels };
}

/** A plot file: the rendered SVG and the Vega-Lite spec it came from (written beside it as .vl.json). */
export async function makePlot(file: string, title: string, spec: TopLevelSpec): Promise<Plot> {
  return { file, title, spec, svg: await renderSvg(spec) };
}

const base = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', background: 'white' } as const;
/** Legends below the chart, labels never shortened ("shuffled-label control" was cut to "shuffled-label con…"). */
const legend = { orient: 'bottom', direction: 'horizontal', labelLimit: 0, titleLimit: 0, columns: 3 } as const;

/** Colour for a quantitative field: diverging around 0 for signed data (patching effects), sequential otherwise (norms, attention). */
export function colourScale(values: number[]): { scheme: string; domainMid?: number; reverse?: boolean; zero?: boolean } {
  const finite = values.filter(Number.isFinite);
  const signed = finite.some((v) => v < 0) && finite.some((v) => v > 0);
  return signed ? { scheme: 'redblue', domainMid: 0, reverse: true } : { scheme: 'viridis', zero: false };
}

/** Axes with this many labels or more are drawn by index, binned to at most MAX_CELLS cells (thousands of token columns). */
const MAX_LABELLED = 64;
const MAX_CELLS = 400;

/** Means of consecutive groups of `k` columns; NaN cells are skipped. */
function binColumns(values: number[][], k: number): number[][] {
  return values.map((row) => Array.from({ length: Math.ceil(row.length / k) }, (_, b) => {
    const cells = row.slice(b * k, (b + 1) * k).filter(Number.isFinite);
    return cells.length ? cells.reduce((a, x) => a + x, 0) / cells.length : Number.NaN;
  }));
}

export interface HeatmapAxes {
  rowTitle: string;
  colTitle: string;
  valueTitle: string;
}

/**
 * Rows x columns grid of values. Few columns: one labelled cell each, with its value printed when the
 * grid is small. Many columns (a 2,400-token capture): columns by index, averaged into bins.
 */
export function heatmap(title: string, rowLabels: string[], colLabels: string[], cells: readonly (readonly (number | null)[])[], axes: HeatmapAxes): TopLevelSpec {
  // A missing cell (null) is left blank, as a non-finite one is.
  const values = cells.map((r) => r.map((v) => (v === null ? Number.NaN : v)));
  if (rowLabels.length !== values.length || values.some((r) => r.length !== colLabels.length)) {
    throw new Error(`heatmap "${title}": ${values.length} rows of values for ${rowLabels.length} row labels, or a row without ${colLabels.length} values`);
  }
  const scale = colourScale(values.flat());
  // A colour legend's title is the value's name, never shortened ("logit-difference re…").
  const color = { field: 'value', type: 'quantitative', title: axes.valueTitle, scale, legend: { titleLimit: 0 } };
  const y = { field: 'row', type: 'ordinal', sort: rowLabels, title: axes.rowTitle };
  const height = Math.max(60, rowLabels.length * 22);
  if (colLabels.length < MAX_LABELLED) {
    const data = rowLabels.flatMap((r, i) => colLabels.map((c, j) => ({ row: r, col: c, value: values[i][j] }))).filter((d) => Number.isFinite(d.value));
    const x = { field: 'col', type: 'ordinal', sort: colLabels, title: axes.colTitle };
    const text = data.length <= 600
      ? [{ mark: { type: 'text', fontSize: 8 }, encoding: { x, y, text: { field: 'value', type: 'quantitative', format: '.2f' } } }]
      : [];
    return {
      ...base, title, data: { values: data }, width: Math.max(120, colLabels.length * 28), height,
      layer: [{ mark: 'rect', encoding: { x, y, color, tooltip: [{ field: 'row' }, { field: 'col' }, { field: 'value', format: '.3f' }] } }, ...text],
    } as TopLevelSpec;
  }
  const k = Math.ceil(colLabels.length / MAX_CELLS);
  const binned = k > 1 ? binColumns(values, k) : values;
  const data = rowLabels.flatMap((r, i) => binned[i].map((v, b) => ({ row: r, from: b * k, to: Math.min((b + 1) * k, colLabels.length), value: v }))).filter((d) => Number.isFinite(d.value));
  return {
    ...base, title, data: { values: data }, width: 720, height,
    mark: 'rect',
    encoding: {
      x: { field: 'from', type: 'quantitative', title: `${axes.colTitle} (index${k > 1 ? `; each cell the mean of ${k}` : ''})`, scale: { domain: [0, colLabels.length], nice: false }, axis: { tickMinStep: 1, format: 'd' } },
      x2: { field: 'to' },
      y, color,
      tooltip: [{ field: 'row' }, { field: 'from' }, { field: 'value', format: '.3f' }],
    },
  } as TopLevelSpec;
}

/** Integer x values (layers, head counts) get integer ticks only. */
const integerAxis = (xs: number[]) => (xs.every(Number.isInteger) ? { axis: { tickMinStep: 1, format: 'd' } } : {});

/** One or more series over x (layer curves, coefficient sweeps, share-vs-size curves). */
export function lines(title: string, points: { x: number; y: number; series: string }[], xTitle: string, yTitle: string): TopLevelSpec {
  return {
    ...base, title, data: { values: points }, width: 360, height: 220,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xTitle, ...integerAxis(points.map((p) => p.x)) },
      y: { field: 'y', type: 'quantitative', title: yTitle },
      color: { field: 'series', type: 'nominal', title: 'series', legend },
    },
  } as TopLevelSpec;
}

export function scatter(title: string, points: { x: number; y: number; label: string }[], xTitle: string, yTitle: string): TopLevelSpec {
  return {
    ...base, title, data: { values: points }, width: 320, height: 260,
    mark: { type: 'point', filled: true, size: 60 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xTitle },
      y: { field: 'y', type: 'quantitative', title: yTitle },
      color: { field: 'label', type: 'nominal', title: 'class', legend },
    },
  } as TopLevelSpec;
}

export function bars(title: string, rows: { item: string; value: number; group: string }[], itemTitle: string, valueTitle: string, groupTitle: string): TopLevelSpec {
  return {
    ...base, title, data: { values: rows }, width: 360,
    mark: 'bar',
    encoding: {
      y: { field: 'item', type: 'nominal', title: itemTitle, sort: null },
      yOffset: { field: 'group' },
      x: { field: 'value', type: 'quantitative', title: valueTitle },
      color: { field: 'group', type: 'nominal', title: groupTitle, legend },
    },
  } as TopLevelSpec;
}
