// A tool call as a card: name, arguments, a spinner and progress bar while it runs, then a compact
// result (key numbers, heatmaps for grids, the first rows of tables) or the error.
import { Box } from 'ink';
import React, { useEffect, useState } from 'react';
import { heatmapLines } from './Heatmap.tsx';
import { Lines } from './Lines.tsx';
import { columnsThatFit, renderMarkdown, renderTable } from './markdown.ts';
import { resultView, type Grid } from './results.ts';
import { truncate, wrapSpans, type Line } from './text.ts';

export type ToolStatus = 'running' | 'done' | 'error' | 'cancelled';

export interface ToolCallView {
  id: string;
  name: string;
  args: unknown;
  status: ToolStatus;
  progress?: { done: number; total?: number; message?: string };
  startedAt: number;
  endedAt?: number;
  /** The result text as the server sent it (what a language model reads). */
  resultText?: string;
  /** The typed result (structuredContent): what the card shows. */
  structured?: unknown;
  error?: string;
  /** Grids computed by the caller (e.g. relabelled with tokens); default: read from the result. */
  grids?: Grid[];
  /** Rows of tables shown (default 6). */
  tableRows?: number;
  /** Lines of text results shown (default 14). */
  textLines?: number;
  /** Tables shown (default 3). */
  maxTables?: number;
}

export const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

const STATUS_COLOR: Record<ToolStatus, string> = { running: 'yellow', done: 'green', error: 'red', cancelled: 'gray' };
const STATUS_ICON: Record<ToolStatus, string> = { running: '⚙', done: '✓', error: '✗', cancelled: '⊘' };

/** One argument value, shortened. */
export function argValue(v: unknown, max = 40): string {
  if (typeof v === 'string') return JSON.stringify(truncate(v, max));
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'number')) return truncate(`[${v.join(',')}]`, max);
    if (v.length === 0) return '[]';
    const first = argValue(v[0], Math.min(max, 28));
    return v.length === 1 ? `[${first}]` : `[${first}, … ${v.length} items]`;
  }
  if (v && typeof v === 'object') return truncate(JSON.stringify(v), max);
  return String(v);
}

/** Arguments as `key=value` spans wrapped to the width. */
export function argLines(args: unknown, width: number): Line[] {
  if (!args || typeof args !== 'object' || Object.keys(args).length === 0) return [[{ text: '(no arguments)', dim: true }]];
  const spans: Line = [];
  for (const [k, v] of Object.entries(args as Record<string, unknown>)) {
    if (v === undefined) continue;
    spans.push({ text: `${k}=`, color: 'cyan' }, { text: `${argValue(v).replace(/ /g, '\u00a0')} ` });
  }
  return wrapSpans(spans, width).map((l) => l.map((s) => ({ ...s, text: s.text.replace(/\u00a0/g, ' ') })));
}

export function progressBar(done: number, total: number, width = 20): string {
  const frac = total > 0 ? Math.max(0, Math.min(1, done / total)) : 0;
  const full = Math.round(frac * width);
  return '█'.repeat(full) + '░'.repeat(width - full);
}

const elapsed = (ms: number) => (ms < 1000 ? `${ms} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`);

/** The body of a card: everything but the border, laid out to `width`. */
export function toolCardLines(call: ToolCallView, width: number, frame = 0, now = Date.now()): Line[] {
  const out: Line[] = [];
  const time = elapsed((call.endedAt ?? now) - call.startedAt);
  const status = call.status === 'running' ? `${SPINNER[frame % SPINNER.length]} running` : call.status;
  out.push([
    { text: `${STATUS_ICON[call.status]} `, color: STATUS_COLOR[call.status], bold: true },
    { text: call.name, bold: true },
    { text: `  ${status} · ${time}`, color: STATUS_COLOR[call.status] },
  ]);
  out.push(...argLines(call.args, width));
  if (call.status === 'running') {
    const p = call.progress;
    if (p && p.total) {
      const barW = Math.max(8, Math.min(30, width - 30));
      out.push([{ text: progressBar(p.done, p.total, barW), color: 'yellow' }, { text: ` ${p.done}/${p.total}` }, { text: p.message ? ` ${truncate(p.message, Math.max(10, width - barW - 12))}` : '', dim: true }]);
    } else if (p?.message) out.push([{ text: truncate(p.message, width), dim: true }]);
    return out;
  }
  if (call.status === 'error' || call.status === 'cancelled') {
    const errLines = (call.error ?? call.status).split('\n').flatMap((l) => wrapSpans([{ text: l, color: call.status === 'error' ? 'red' : 'gray' }], width));
    out.push(...errLines.slice(0, 10));
    if (errLines.length > 10) out.push([{ text: `… ${errLines.length - 10} more lines (in the session log)`, dim: true }]);
    return out;
  }
  if (call.structured === undefined) {
    // A result without structure (a foreign server): its text as it came.
    if (call.resultText !== undefined) out.push(...renderMarkdown(call.resultText, width).slice(0, call.textLines ?? 14));
    return out;
  }
  const view = resultView(call.structured);
  const scalars = view.scalars.filter(([, v]) => v.length <= 80).slice(0, 10);
  if (scalars.length) {
    const spans: Line = [];
    scalars.forEach(([k, v]) => spans.push({ text: `${k} `, dim: true }, { text: `${v.replace(/ /g, '\u00a0')}  ` }));
    out.push(...wrapSpans(spans, width).map((l) => l.map((s) => ({ ...s, text: s.text.replace(/\u00a0/g, ' ') }))));
  }
  for (const g of call.grids ?? view.grids) {
    out.push([]);
    out.push(...heatmapLines({ ...g }, width));
  }
  const rowsShown = call.tableRows ?? 6;
  const tables = rowsShown > 0 ? view.tables : [];
  const maxTables = call.maxTables ?? 3;
  for (const t of tables.slice(0, maxTables)) {
    out.push([]);
    out.push([{ text: `${t.title} (${t.rows.length} row${t.rows.length === 1 ? '' : 's'})`, bold: true }]);
    const shown = t.rows.slice(0, rowsShown);
    const ncol = columnsThatFit(t.columns, shown, width);
    out.push(...renderTable(t.columns.slice(0, ncol), shown.map((r) => r.slice(0, ncol)), width));
    const more = t.rows.length - rowsShown;
    const hidden = t.columns.slice(ncol);
    const left = [more > 0 ? `${more} more rows` : '', hidden.length ? `${hidden.length} more column${hidden.length === 1 ? '' : 's'}: ${hidden.join(', ')}` : ''].filter(Boolean);
    if (left.length) out.push(...wrapSpans([{ text: `… ${left.join('; ')} (/export writes the full table)`, dim: true }], width));
  }
  if (tables.length > maxTables) out.push([{ text: `… ${tables.length - maxTables} more tables (${tables.slice(maxTables, maxTables + 3).map((t) => t.title).join(', ')}${tables.length > maxTables + 3 ? ', …' : ''}) in the transcript`, dim: true }]);
  const maxLines = call.textLines ?? 14;
  for (const b of view.texts) {
    out.push([]);
    if (b.title) out.push([{ text: b.title, bold: true }]);
    const md = renderMarkdown(b.text, width);
    out.push(...md.slice(0, maxLines));
    if (md.length > maxLines) out.push([{ text: `… ${md.length - maxLines} more lines (in the transcript)`, dim: true }]);
  }
  return out;
}

export function ToolCard({ call, width }: { call: ToolCallView; width: number }) {
  const [frame, setFrame] = useState(0);
  useEffect(() => {
    if (call.status !== 'running') return;
    const t = setInterval(() => setFrame((f) => f + 1), 120);
    return () => clearInterval(t);
  }, [call.status]);
  const inner = Math.max(16, width - 4);
  const lines = toolCardLines(call, inner, frame);
  return (
    <Box borderStyle="round" borderColor={STATUS_COLOR[call.status]} paddingX={1} flexDirection="column" width={Math.max(20, width)}>
      <Lines lines={lines} />
    </Box>
  );
}
