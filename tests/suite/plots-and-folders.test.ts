// Plots a reader can trust (named axes, colours that fit the data's signs, long captures binned
// instead of breaking the renderer) and report folders that runs do not damage: one new folder per
// run, none left behind by a run cancelled before its first report.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { buildTinyModel } from '../../engine/tiny/index.ts';
import { runSuite, suiteOutDir } from '../../tools/suite/index.ts';
import { num } from '../../tools/suite/markdown.ts';
import { heatmap, lines, renderSvg } from '../../tools/suite/plots.ts';
import { openWorkspace } from '../../tools/workspace.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-plots-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

it('draws a 24-layer x 2,400-token norm grid binned by index, with a sequential scale and a real legend', async () => {
  const rows = Array.from({ length: 24 }, (_, l) => `L${l}`);
  const cols = Array.from({ length: 2400 }, (_, p) => `${p}:tok`);
  const values = rows.map((_, l) => cols.map((_, p) => 10 + l + (p % 7) / 10));
  const spec = heatmap('norms', rows, cols, values, { rowTitle: 'layer', colTitle: 'token', valueTitle: 'norm' }) as any;
  expect(spec.encoding.x).toMatchObject({ field: 'from', type: 'quantitative', title: 'token (index; each cell the mean of 6)', scale: { domain: [0, 2400] } });
  expect(spec.encoding.y.title).toBe('layer');
  expect(spec.encoding.color.scale.scheme).toBe('viridis');
  expect(spec.data.values).toHaveLength(24 * 400);
  const svg = await renderSvg(spec);
  expect(svg).not.toMatch(/NaN|Infinity/);
  // The legend spans the data: its labels are not all one number.
  const legend = [...svg.matchAll(/role-legend-label[\s\S]*?<\/g>/g)][0][0];
  const labels = [...legend.matchAll(/>([\d.]+)<\/text>/g)].map((m) => Number(m[1]));
  expect(new Set(labels).size).toBeGreaterThan(2);
  expect(Math.min(...labels)).toBeLessThanOrEqual(15);
  expect(Math.max(...labels)).toBeGreaterThanOrEqual(30);
});

it('colours signed effects on a diverging scale, and counts along x get integer ticks and an uncut legend', async () => {
  const signed = heatmap('effects', ['L0', 'L1'], ['H0', 'H1'], [[-0.5, 0], [0.25, 1]], { rowTitle: 'layer', colTitle: 'head', valueTitle: 'effect' }) as any;
  expect(signed.layer[0].encoding.color.scale).toMatchObject({ scheme: 'redblue', domainMid: 0 });
  expect(signed.layer[0].encoding.x.title).toBe('head');
  const curve = lines('probe', [0, 1, 2, 3].map((x) => ({ x, y: x / 4, series: 'shuffled-label control' })), 'layer', 'accuracy') as any;
  expect(curve.encoding.x.axis).toEqual({ tickMinStep: 1, format: 'd' });
  const svg = await renderSvg(curve);
  expect(svg).toContain('>shuffled-label control<');
  const xAxis = svg.slice(svg.indexOf("X-axis titled 'layer'"), svg.indexOf('role-axis-domain', svg.indexOf("X-axis titled 'layer'")));
  expect([...xAxis.matchAll(/>([^<]+)<\/text>/g)].map((m) => m[1])).toEqual(['0', '1', '2', '3']);
});

it('prints float noise as 0', () => {
  expect(num(-1.26e-19)).toBe('0.000');
  expect(num(-1.26e-19, 2)).toBe('0.00');
  expect(num(-0.0004)).toBe('0.000');
  expect(num(-0.0006)).toBe('-0.001');
});

it('gives every run its own report folder and leaves none behind when cancelled before a report', async () => {
  const findings = join(root, 'findings');
  const at = new Date('2026-12-07T21:09:45Z');
  const first = suiteOutDir('tiny-s-seed0', at, findings);
  expect(first).toBe(join(findings, '2026-12-07-2109-tiny-s-seed0'));
  mkdirSync(first, { recursive: true });
  expect(suiteOutDir('tiny-s-seed0', at, findings)).toBe(`${first}-2`);

  buildTinyModel('tiny-s', 7, join(root, 'model'));
  const ws = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 });
  try {
    const out = suiteOutDir('tiny-s-seed7', at, findings);
    const ac = new AbortController();
    const run = runSuite({ ctx: { ...ws.ctx, signal: ac.signal }, modelDir: join(root, 'model'), outDir: out, only: [3], onStep: () => ac.abort() });
    await expect(run).rejects.toThrow(/cancel/i);
    expect(existsSync(out)).toBe(false);
  } finally {
    await ws.close();
  }
}, 120_000);
