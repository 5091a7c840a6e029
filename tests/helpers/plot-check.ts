// What a reader needs from a chart, checked on the Vega-Lite spec, on the SVG vega drew from it and
// on the PNG resvg renders from that SVG: named axes, the scale type the data calls for, tick labels
// that are distinct numbers (integers for counts), legends not cut, nothing drawn off the canvas.
import { expect } from 'vitest';
import { renderPng } from '../../tools/suite/plots.ts';

type Enc = { field?: string; type?: string; title?: unknown; axis?: { tickMinStep?: number } | null; scale?: { scheme?: string; type?: string }; legend?: { labelLimit?: number } | null };
export type Spec = { title?: string; data: { values: Record<string, unknown>[] }; encoding?: Record<string, Enc>; layer?: { encoding: Record<string, Enc> }[] };

/** The tick (or legend entry) labels of the SVG group whose aria-label starts with `prefix` (e.g. "X-axis"). */
function groupLabels(svg: string, prefix: string): { aria: string; labels: string[] } | null {
  const at = svg.indexOf(`aria-label="${prefix}`);
  if (at < 0) return null;
  const aria = svg.slice(at + 12, svg.indexOf('"', at + 12));
  // An axis's labels are one mark, before its domain line; a legend's come before its title.
  const axis = prefix.endsWith('axis');
  const from = axis ? svg.indexOf('role-axis-label', at) : at;
  const end = svg.indexOf(axis ? 'class="mark-' : 'role-legend-title', from);
  const labels = [...svg.slice(from, end).matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
  return { aria, labels };
}

const numeric = (s: string) => Number(s.replace(/[,\u2212]/g, (c) => (c === ',' ? '' : '-')));

/**
 * Checks one plot: `spec` is the Vega-Lite spec, `svg` what vega drew from it. Returns the PNG's size.
 * `name` prefixes every failure message.
 */
export function checkPlot(name: string, svg: string, spec: Spec): { width: number; height: number } {
  expect(spec.title, `${name}: title`).toBeTruthy();
  expect(svg, `${name}: no NaN or Infinity drawn`).not.toMatch(/NaN|Infinity/);
  // A label shortened by vega ends in an ellipsis.
  expect([...svg.matchAll(/<text[^>]*>([^<]*…)<\/text>/g)].map((m) => m[1]), `${name}: no cut labels`).toEqual([]);
  const enc = [spec.encoding, ...(spec.layer ?? []).map((l) => l.encoding)].find((e): e is Record<string, Enc> => !!e)!;
  const values = (f: string) => spec.data.values.map((d) => d[f]);
  for (const ch of ['x', 'y'] as const) {
    const e = enc[ch]!;
    expect(typeof e.title === 'string' && e.title.length > 0, `${name}: ${ch} axis title`).toBe(true);
    const axis = groupLabels(svg, `${ch.toUpperCase()}-axis`);
    expect(axis, `${name}: ${ch} axis drawn`).not.toBeNull();
    // The title in the SVG is the spec's, and the scale type is the one the field type calls for.
    expect(axis!.aria, `${name}: ${ch} axis`).toContain(`titled '${e.title}'`);
    expect(axis!.aria, `${name}: ${ch} scale type`).toMatch(e.type === 'quantitative' ? /for a linear scale/ : /for a discrete scale/);
    const ticks = axis!.labels;
    if (e.type === 'quantitative') {
      const nums = ticks.map(numeric);
      expect(nums.every(Number.isFinite), `${name}: ${ch} ticks are numbers: ${ticks.join(' ')}`).toBe(true);
      expect(new Set(nums).size, `${name}: ${ch} ticks distinct: ${ticks.join(' ')}`).toBe(nums.length);
      const data = values(e.field!) as number[];
      // Counts along x (layers, heads kept) get integer ticks; a y of shares may happen to be whole numbers.
      if (ch === 'x' && data.every((v) => Number.isInteger(v))) expect(nums.every(Number.isInteger), `${name}: ${ch} integer ticks: ${ticks.join(' ')}`).toBe(true);
    } else {
      expect(ticks.length, `${name}: ${ch} category labels`).toBeGreaterThan(0);
    }
  }
  const c = enc.color;
  if (c?.type === 'quantitative') {
    const v = (values(c.field!) as number[]).filter(Number.isFinite);
    expect(c.scale?.scheme, `${name}: colour scale fits the data's signs`).toBe(v.some((x) => x < 0) && v.some((x) => x > 0) ? 'redblue' : 'viridis');
    const legend = groupLabels(svg, 'Gradient legend');
    expect(legend, `${name}: colour legend drawn`).not.toBeNull();
    const labels = legend!.labels.map(numeric);
    expect(new Set(labels).size, `${name}: colour legend spans the data: ${legend!.labels.join(' ')}`).toBeGreaterThan(1);
  } else if (c) {
    expect(c.legend?.labelLimit, `${name}: legend labels uncut`).toBe(0);
    const legend = groupLabels(svg, 'Symbol legend');
    expect(legend, `${name}: legend drawn`).not.toBeNull();
    const series = [...new Set(values(c.field!).map(String))];
    for (const s of series) expect(legend!.labels, `${name}: legend names ${s}`).toContain(s);
  }
  // The PNG: drawn without vega's white background, nothing may touch the canvas edge (a cut legend
  // or axis title would), and the chart is not blank.
  const clear = svg.replace(/<rect width="[\d.]+" height="[\d.]+" fill="white"\/>/, '');
  const { width, height, pixels, png } = renderPng(clear);
  expect(png.subarray(1, 4).toString(), `${name}: PNG`).toBe('PNG');
  const size = /^<svg[^>]* width="([\d.]+)" height="([\d.]+)"/.exec(svg);
  expect(size, `${name}: SVG size`).not.toBeNull();
  // resvg rounds a fractional SVG size (795.4 -> 795).
  expect(Math.abs(width - Number(size![1])) < 1 && Math.abs(height - Number(size![2])) < 1, `${name}: PNG size ${width}x${height} is the SVG's ${size![1]}x${size![2]}`).toBe(true);
  const alpha = (x: number, y: number) => pixels[(y * width + x) * 4 + 3];
  let edge = 0;
  for (let x = 0; x < width; x++) edge += alpha(x, 0) + alpha(x, height - 1);
  for (let y = 0; y < height; y++) edge += alpha(0, y) + alpha(width - 1, y);
  expect(edge, `${name}: nothing drawn on the PNG's edge (cut)`).toBe(0);
  let inked = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) inked++;
  expect(inked / (width * height), `${name}: PNG has a drawing`).toBeGreaterThan(0.02);
  return { width, height };
}
