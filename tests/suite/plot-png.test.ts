// Every kind of plot the project writes (suite reports, chat exports), rendered to PNG and checked
// as a reader would look at it: axes titled, scale types right, ticks that make sense, legends whole.
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { bars, heatmap, lines, renderPng, renderSvg, scatter } from '../../tools/suite/plots.ts';
import { checkPlot, type Spec } from '../helpers/plot-check.ts';

const keep = process.env.NEUROSCOPE_KEEP_PNG ? mkdtempSync(join(tmpdir(), 'ns-png-')) : null;

async function check(name: string, spec: unknown) {
  const svg = await renderSvg(spec as never);
  if (keep) writeFileSync(join(keep, `${name}.png`), renderPng(svg).png);
  return checkPlot(name, svg, spec as Spec);
}

it('a signed layer x head heatmap: diverging colours, discrete axes, values printed', async () => {
  const spec = heatmap('IOI head patching', ['L0', 'L1', 'L2'], ['H0', 'H1', 'H2', 'H3'], [[0.1, -0.2, 0, 0.5], [0.9, 0, -0.05, 0], [0, 0.3, 0, 0.02]], { rowTitle: 'layer', colTitle: 'head', valueTitle: 'logit-difference recovered' }) as any;
  expect(spec.layer[0].encoding.color.scale.scheme).toBe('redblue');
  const png = await check('heatmap-signed', spec);
  expect(png.width).toBeGreaterThan(120);
});

it('an all-positive norm heatmap over 2,400 tokens: sequential colours, integer index ticks, a legend that spans the data', async () => {
  const rows = Array.from({ length: 4 }, (_, l) => `L${l}`);
  const cols = Array.from({ length: 2400 }, (_, p) => `${p}:tok`);
  const spec = heatmap('residual norm', rows, cols, rows.map((_, l) => cols.map((_, p) => 10 + l + (p % 7) / 10)), { rowTitle: 'layer', colTitle: 'token', valueTitle: 'norm' }) as any;
  expect(spec.encoding.color.scale.scheme).toBe('viridis');
  await check('heatmap-long', spec);
});

it('layer curves with a long series name: integer layer ticks (no 0.5), the legend whole', async () => {
  const pts = [0, 1, 2, 3].flatMap((x) => [{ x, y: 0.5 + x / 8, series: 'probe accuracy' }, { x, y: 0.5, series: 'shuffled-label control (chance)' }]);
  const spec = lines('probe accuracy by layer', pts, 'layer', 'held-out accuracy') as any;
  expect(spec.encoding.x.axis.tickMinStep).toBe(1);
  await check('lines-layers', spec);
});

it('a curve over few integer sizes keeps its x axis to the data (growth: 0..8 heads, not 0..128)', async () => {
  const pts = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((x) => ({ x, y: Math.min(1, x / 4), series: 'tiny-s' }));
  const spec = lines('share of the effect vs circuit size', pts, 'heads kept', 'share of the effect') as any;
  const svg = await renderSvg(spec);
  checkPlot('growth', svg, spec);
  const x = /aria-label="X-axis[^"]*values from (\d+) to (\d+)"/.exec(svg)!;
  expect([Number(x[1]), Number(x[2])]).toEqual([0, 8]);
});

it('a scatter of classes and a grouped bar chart', async () => {
  await check('scatter', scatter('PCA of prompts', [{ x: -1.5, y: 0.2, label: 'math' }, { x: 1.2, y: -0.4, label: 'code' }, { x: 0.3, y: 1.1, label: 'prose' }], 'PC1', 'PC2'));
  await check('bars', bars('ablation damage', [{ item: 'L3.E7 top neurons', value: 1, group: 'number-selective' }, { item: 'L3.E7 top neurons', value: 0.02, group: 'control: other neurons of the same experts' }], 'component', 'damage (share of logit difference lost)', 'neurons'));
});
