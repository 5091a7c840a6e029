// Heatmaps drawn in the terminal: coloured blocks whose shade also shows the magnitude (so they read
// without colour too), rows and columns labelled (layers, heads, tokens), a legend with the scale and
// the largest cell. Diverging colours (blue < 0 < red) when values have both signs, otherwise a
// sequential scale. Laid out to a width: long column labels are written vertically, columns that do
// not fit are cut with a note.
import React from 'react';
import { Lines } from './Lines.tsx';
import { fmtNum, padEnd, padStart, strWidth, truncate, type Line, type Span } from './text.ts';
import { useTerminalWidth } from './useTerminalWidth.ts';

export interface HeatmapProps {
  rowLabels: string[];
  colLabels: string[];
  /** null: no value (drawn blank, e.g. attention above the diagonal); NaN: drawn as "?". */
  values: (number | null)[][];
  title?: string;
  /** Axis names, e.g. "layer" and "head", or "query" and "key". */
  rowAxis?: string;
  colAxis?: string;
  /** 'auto': diverging when values have both signs. */
  scale?: 'auto' | 'diverging' | 'sequential';
  /** Fixed ends of the scale (default: from the data; diverging is symmetric around 0). */
  min?: number;
  max?: number;
  /** Width to lay out to (default: the terminal's). */
  width?: number;
  /** Rows shown at most (the rest are cut with a note). */
  maxRows?: number;
}

const SHADES = ['·', '░', '▒', '▓', '█'];

const hex = (r: number, g: number, b: number) => `#${[r, g, b].map((x) => Math.round(Math.max(0, Math.min(255, x))).toString(16).padStart(2, '0')).join('')}`;
const mix = (a: number[], b: number[], t: number) => hex(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t);

const NEUTRAL = [88, 88, 88];
const RED = [255, 40, 40];
const BLUE = [60, 120, 255];
const SEQ = [[40, 30, 90], [40, 120, 140], [80, 200, 100], [250, 230, 40]];

function seqColor(t: number): string {
  const x = Math.max(0, Math.min(1, t)) * (SEQ.length - 1);
  const k = Math.min(SEQ.length - 2, Math.floor(x));
  return mix(SEQ[k], SEQ[k + 1], x - k);
}

export interface Scale {
  kind: 'diverging' | 'sequential';
  lo: number;
  hi: number;
}

export function heatScale(values: (number | null)[][], opts: Pick<HeatmapProps, 'scale' | 'min' | 'max'> = {}): Scale {
  const finite = values.flat().filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  const dmin = finite.length ? Math.min(...finite) : 0;
  const dmax = finite.length ? Math.max(...finite) : 1;
  const kind = opts.scale && opts.scale !== 'auto' ? opts.scale : dmin < 0 && dmax > 0 ? 'diverging' : 'sequential';
  if (kind === 'diverging') {
    const m = Math.max(Math.abs(opts.min ?? dmin), Math.abs(opts.max ?? dmax)) || 1;
    return { kind, lo: -m, hi: m };
  }
  let lo = opts.min ?? (dmin >= 0 ? 0 : dmin);
  let hi = opts.max ?? dmax;
  if (dmax <= 0 && opts.max === undefined && opts.min === undefined) {
    // All values <= 0: magnitude grows downwards.
    lo = dmin;
    hi = 0;
  }
  if (hi === lo) hi = lo + 1;
  return { kind, lo, hi };
}

/** The shade character and colour of one value. */
export function cellStyle(v: number | null, s: Scale): { ch: string; color?: string } {
  if (v === null) return { ch: ' ' };
  if (!Number.isFinite(v)) return { ch: '?' };
  let t: number;
  let color: string;
  if (s.kind === 'diverging') {
    t = Math.min(1, Math.abs(v) / s.hi);
    color = mix(NEUTRAL, v >= 0 ? RED : BLUE, t);
  } else {
    const u = (v - s.lo) / (s.hi - s.lo);
    // For all-negative data the magnitude is what matters.
    t = s.hi === 0 && s.lo < 0 ? 1 - u : u;
    t = Math.max(0, Math.min(1, t));
    color = seqColor(u);
  }
  const k = t < 0.05 ? 0 : Math.min(SHADES.length - 1, 1 + Math.floor(t * (SHADES.length - 1) - 1e-9));
  return { ch: SHADES[k], color };
}

/** Lays a heatmap out into lines of at most `width` cells. */
export function heatmapLines(p: HeatmapProps, width = 80): Line[] {
  const R = p.rowLabels.length;
  const C = p.colLabels.length;
  const out: Line[] = [];
  if (p.title) out.push([{ text: truncate(p.title, width), bold: true }]);
  if (R === 0 || C === 0) {
    out.push([{ text: '(empty grid)', dim: true }]);
    return out;
  }
  const scale = heatScale(p.values, p);
  const maxRows = p.maxRows ?? 48;
  const rowAxis = p.rowAxis ? `${p.rowAxis} ↓` : '';
  const rowW = Math.min(16, Math.max(strWidth(rowAxis), ...p.rowLabels.map(strWidth)));
  const avail = Math.max(4, width - rowW - 1);
  const longest = Math.max(...p.colLabels.map(strWidth));
  // Horizontal labels when they fit in a cell of at most 5 cells; otherwise vertical.
  let cw = longest <= 4 ? longest + 1 : 2;
  if (C * cw > avail && cw > 2) cw = Math.max(2, Math.floor(avail / C));
  const horizontal = longest < cw || (longest <= 4 && cw > longest);
  if (C * cw > avail && cw === 2) cw = 1;
  const shownC = Math.min(C, Math.floor(avail / cw));
  const gap = cw >= 3 ? 1 : 0;
  const colLabels = p.colLabels.slice(0, shownC);
  const indent = ' '.repeat(rowW + 1);

  if (p.colAxis) out.push([{ text: indent }, { text: truncate(`${p.colAxis} →`, width - rowW - 1), dim: true }]);
  const header: string[] = [];
  if (horizontal) header.push(colLabels.map((c) => padEnd(truncate(c, cw - gap), cw)).join(''));
  else {
    const height = Math.min(8, Math.max(...colLabels.map((c) => strWidth(c.replace(/^-?\d+:(?=.)/, '')))));
    // Positions read in order: "12:Mary" is written as its token only.
    const cut = colLabels.map((c) => [...truncate(c.replace(/^-?\d+:(?=.)/, ''), height)]);
    for (let k = 0; k < height; k++) header.push(cut.map((chars) => padEnd(chars[k] ?? ' ', cw)).join(''));
  }
  header.forEach((h, k) => {
    const lead = k === header.length - 1 && rowAxis ? `${padStart(truncate(rowAxis, rowW), rowW)} ` : indent;
    out.push([{ text: lead, dim: true }, { text: h, color: 'gray' }]);
  });
  const rows = Math.min(R, maxRows);
  for (let i = 0; i < rows; i++) {
    const line: Line = [{ text: `${padStart(truncate(p.rowLabels[i], rowW), rowW)} `, color: 'gray' }];
    for (let j = 0; j < shownC; j++) {
      const { ch, color } = cellStyle(p.values[i]?.[j] ?? null, scale);
      const span: Span = { text: ch.repeat(cw - gap), color };
      line.push(span);
      if (gap) line.push({ text: ' ' });
    }
    out.push(line);
  }
  const notes: string[] = [];
  if (rows < R) notes.push(`${R - rows} more rows not shown`);
  if (shownC < C) notes.push(`${C - shownC} more columns not shown (widen the terminal)`);
  // Legend: scale ends, the shades, and the largest cell.
  let best: { v: number; i: number; j: number } | null = null;
  p.values.forEach((r, i) => r.forEach((v, j) => {
    if (typeof v === 'number' && Number.isFinite(v) && (!best || Math.abs(v) > Math.abs(best.v))) best = { v, i, j };
  }));
  const legend: Line = [{ text: `${' '.repeat(rowW + 1)}${fmtNum(scale.lo)} `, dim: true }];
  const steps = 9;
  for (let k = 0; k < steps; k++) {
    const v = scale.lo + ((scale.hi - scale.lo) * k) / (steps - 1);
    const { ch, color } = cellStyle(v, scale);
    legend.push({ text: ch, color });
  }
  legend.push({ text: ` ${fmtNum(scale.hi)}`, dim: true });
  const b = best as { v: number; i: number; j: number } | null;
  if (b) legend.push({ text: `   max |value| ${fmtNum(b.v)} at ${p.rowLabels[b.i]} × ${p.colLabels[b.j]}`, dim: true });
  out.push(legend);
  for (const n of notes) out.push([{ text: n, dim: true, italic: true }]);
  return out.map((l) => cutLine(l, width));
}

function cutLine(line: Line, width: number): Line {
  let w = 0;
  const out: Line = [];
  for (const s of line) {
    const sw = strWidth(s.text);
    if (w + sw <= width) {
      out.push(s);
      w += sw;
    } else {
      if (width - w > 0) out.push({ ...s, text: truncate(s.text, width - w) });
      break;
    }
  }
  return out;
}

export function Heatmap(props: HeatmapProps) {
  const term = useTerminalWidth();
  const width = props.width ?? term;
  const lines = React.useMemo(() => heatmapLines(props, width), [props, width]);
  return <Lines lines={lines} />;
}
