// Plots as SVG files, rendered headless from Vega-Lite specs (vega's SVG renderer needs no canvas).
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const base = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', background: 'white' } as const;

/** Rows x columns grid of values, diverging colours centred on 0 (patching effects). */
export function heatmap(title: string, rowLabels: string[], colLabels: string[], values: readonly (readonly (number | null)[])[], valueTitle = 'effect'): TopLevelSpec {
  const data = rowLabels.flatMap((r, i) => colLabels.map((c, j) => ({ row: r, col: c, value: values[i][j] })))
    .filter((d) => d.value !== null && Number.isFinite(d.value));
  return {
    ...base, title, data: { values: data },
    width: Math.max(120, colLabels.length * 28), height: Math.max(60, rowLabels.length * 22),
    layer: [
      {
        mark: 'rect',
        encoding: {
          x: { field: 'col', type: 'ordinal', sort: colLabels, title: null },
          y: { field: 'row', type: 'ordinal', sort: rowLabels, title: null },
          color: { field: 'value', type: 'quantitative', title: valueTitle, scale: { scheme: 'redblue', domainMid: 0, reverse: true } },
          tooltip: [{ field: 'row' }, { field: 'col' }, { field: 'value', format: '.3f' }],
        },
      },
      {
        mark: { type: 'text', fontSize: 8 },
        encoding: {
          x: { field: 'col', type: 'ordinal', sort: colLabels },
          y: { field: 'row', type: 'ordinal', sort: rowLabels },
          text: { field: 'value', type: 'quantitative', format: '.2f' },
        },
      },
    ],
  } as TopLevelSpec;
}

/** One or more series over x (layer curves, coefficient sweeps, share-vs-size curves). */
export function lines(title: string, points: { x: number; y: number; series: string }[], xTitle: string, yTitle: string): TopLevelSpec {
  return {
    ...base, title, data: { values: points }, width: 360, height: 220,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xTitle },
      y: { field: 'y', type: 'quantitative', title: yTitle },
      color: { field: 'series', type: 'nominal', title: null },
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
      color: { field: 'label', type: 'nominal', title: 'class' },
    },
  } as TopLevelSpec;
}

export function bars(title: string, rows: { item: string; value: number; group: string }[], valueTitle: string): TopLevelSpec {
  return {
    ...base, title, data: { values: rows }, width: 360,
    mark: 'bar',
    encoding: {
      y: { field: 'item', type: 'nominal', title: null, sort: null },
      yOffset: { field: 'group' },
      x: { field: 'value', type: 'quantitative', title: valueTitle },
      color: { field: 'group', type: 'nominal', title: null },
    },
  } as TopLevelSpec;
}
