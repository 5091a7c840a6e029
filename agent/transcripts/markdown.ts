// Conversations as Markdown: a title, the date, the model, then each turn under a heading with the
// user's message, the replies, and every tool call as a collapsible <details> block holding its
// arguments and a summary of its result (key numbers, tables, heatmaps written as SVG plots and linked).
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, relative, dirname } from 'node:path';
import { resultView, titledGrid, type Grid } from '../ui/results.ts';

export type TurnItem =
  | { kind: 'assistant'; text: string }
  | {
    kind: 'tool'; name: string;
    /** The call's arguments; undefined when the source records none (a bare tool output). */
    args: unknown;
    /** Code or text the call ran (ChatGPT's python), shown as code instead of arguments. */
    input?: { language: string; text: string };
    status: 'running' | 'done' | 'error' | 'cancelled';
    /** The result text (for imported conversations, the only form there is). */
    result?: string;
    /** The typed result, which the transcript renders; structuredOmitted says why one is missing. */
    structured?: unknown;
    structuredOmitted?: string;
    error?: string; ms?: number; grids?: Grid[];
  }
  | { kind: 'note'; text: string; tone?: 'info' | 'error' | 'success' };

export interface Turn {
  /** The user's message (absent for what came before the first message). */
  user?: string;
  /** Who wrote the user message, for imports with other roles ("system"). */
  userRole?: string;
  items: TurnItem[];
}

export interface Conversation {
  title: string;
  /** ISO date of the conversation's start. */
  date: string;
  model?: string;
  llm?: string;
  source?: string;
  session?: string;
  turns: Turn[];
}

export interface MarkdownOptions {
  /** Directory for SVG plots of grids; omitted: no plots. */
  plotsDir?: string;
  /** The Markdown file's directory, to make plot links relative. */
  mdDir?: string;
  /** Rows of a result table written at most. */
  tableRows?: number;
}

const fence = (lang: string, body: string) => {
  const ticks = body.includes('```') ? '~~~~' : '```';
  return `${ticks}${lang}\n${body.replace(/\s+$/, '')}\n${ticks}`;
};

const mdCell = (s: string) => s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

export function mdTable(columns: string[], rows: string[][]): string {
  return [`| ${columns.map(mdCell).join(' | ')} |`, `|${columns.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${columns.map((_, j) => mdCell(r[j] ?? '')).join(' | ')} |`)].join('\n');
}

const fmt = (x: number | null) => (x === null ? '' : Number.isInteger(x) ? String(x) : Number.isFinite(x) ? String(Number(x.toPrecision(4))) : String(x));

export function slugify(s: string, max = 48): string {
  const slug = s.toLowerCase().normalize('NFKD').replace(/[\u0300-\u036f]/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, max).replace(/-+$/, '');
  return slug || 'conversation';
}

const oneLine = (s: string, max = 72) => {
  const l = s.trim().split('\n')[0].replace(/\s+/g, ' ');
  return l.length > max ? `${l.slice(0, max - 1)}…` : l;
};

function displayDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

const quote = (s: string) => s.split('\n').map((l) => (l ? `> ${l}` : '>')).join('\n');

/**
 * Message text as Markdown inside a transcript: raw HTML tags (a pasted "<script>") shown as text,
 * and headings moved below the turn headings ("## Commands" in /help becomes "#### Commands");
 * code fences and inline code are left as they are.
 */
export function embedText(text: string): string {
  let fenced = false;
  return text.split('\n').map((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return line;
    }
    if (fenced) return line;
    const demoted = line.replace(/^(#{1,4})(\s)/, (_, h: string, sp: string) => `${h}##${sp}`);
    // Outside inline code spans, "<" before a tag name, "/" or "!" is a literal character.
    return demoted.split(/(`[^`]*`)/).map((part, i) => (i % 2 ? part : part.replace(/<(?=[A-Za-z/!?])/g, '&lt;'))).join('');
  }).join('\n');
}

/** A turn's heading from its message: the first line that is not a placeholder ("[image]"), else what the placeholders were. */
function turnHeading(user: string): string {
  const lines = user.split('\n').map((l) => l.trim()).filter(Boolean);
  const placeholder = /^\[[a-z_ ]+\]$/i;
  const text = lines.find((l) => !placeholder.test(l));
  if (text) return oneLine(text).replace(/^#+\s*/, '');
  return lines.length ? `(${[...new Set(lines.map((l) => l.slice(1, -1).replace(/_/g, ' ')))].join(', ')} only)` : '(empty message)';
}

const elapsed = (ms?: number) => (ms === undefined ? '' : ms < 1000 ? ` · ${ms} ms` : ` · ${(ms / 1000).toFixed(1)} s`);

/** A grid's plot: the SVG and the Vega-Lite spec it came from (written beside it as .vl.json, as the suite does). */
async function svgHeatmap(g: Grid): Promise<{ svg: string; spec: unknown }> {
  const { heatmap, renderSvg } = await import('../../tools/suite/plots.ts');
  const values = g.values.map((r) => r.map((v) => (v === null ? Number.NaN : v)));
  const spec = heatmap(g.title, g.rowLabels, g.colLabels, values, {
    rowTitle: g.rowAxis ?? axisTitle(g.rowLabels), colTitle: g.colAxis ?? axisTitle(g.colLabels), valueTitle: g.value ?? (g.rowAxis === 'query' ? 'attention' : 'value'),
  });
  return { svg: await renderSvg(spec), spec };
}

/** An axis title from its labels when the grid names none: L3 -> layer, H2 -> head, P5 -> position, E1 -> expert. */
function axisTitle(labels: string[]): string {
  const kinds: [RegExp, string][] = [[/^L\d+$/, 'layer'], [/^H\d+$/, 'head'], [/^P\d+/, 'position'], [/^E\d+$/, 'expert'], [/^L\d+\.H\d+$/, 'head']];
  return kinds.find(([re]) => labels.every((l) => re.test(l)))?.[1] ?? 'item';
}

interface Ctx {
  opts: MarkdownOptions;
  plotCount: number;
  plotPrefix: string;
}

async function toolMarkdown(item: Extract<TurnItem, { kind: 'tool' }>, ctx: Ctx): Promise<string> {
  const parts: string[] = [];
  parts.push('<details>');
  parts.push(`<summary>Tool call: <code>${item.name}</code> · ${item.status}${elapsed(item.ms)}</summary>`, '');
  if (item.input) parts.push('**Input**', '', fence(item.input.language, item.input.text), '');
  if (item.args !== undefined) {
    const args = JSON.stringify(item.args, null, 2);
    parts.push('**Arguments**', '', fence('json', args.length > 6000 ? `${args.slice(0, 6000)}\n… (cut)` : args), '');
  }
  if (item.status === 'error' || item.status === 'cancelled') {
    parts.push(`**${item.status === 'error' ? 'Error' : 'Cancelled'}**`, '', fence('text', item.error ?? item.status), '');
  } else if (item.structured !== undefined && item.structured !== null) {
    const view = resultView(item.structured);
    parts.push('**Result**', '');
    if (view.scalars.length) parts.push(view.scalars.map(([k, v]) => `- ${k}: \`${v}\``).join('\n'), '');
    for (const g of item.grids ?? view.grids.map((x) => titledGrid(x, item.name))) {
      if (ctx.opts.plotsDir) {
        ctx.plotCount++;
        const file = join(ctx.opts.plotsDir, `${ctx.plotPrefix}${String(ctx.plotCount).padStart(2, '0')}-${slugify(item.name, 24)}.svg`);
        try {
          mkdirSync(ctx.opts.plotsDir, { recursive: true });
          const plot = await svgHeatmap(g);
          writeFileSync(file, plot.svg);
          writeFileSync(file.replace(/\.svg$/, '.vl.json'), `${JSON.stringify(plot.spec, null, 2)}\n`);
          const link = ctx.opts.mdDir ? relative(ctx.opts.mdDir, file).split('\\').join('/') : file;
          parts.push(`![${g.title}](${encodeURI(link)})`, '');
        } catch (e) {
          parts.push(`(plot not written: ${(e as Error).message})`, '');
        }
      }
      parts.push(`${g.title}:`, '', mdTable([`${g.rowAxis ?? ''} \\ ${g.colAxis ?? ''}`, ...g.colLabels], g.values.map((r, i) => [g.rowLabels[i], ...r.map(fmt)])), '');
    }
    const maxRows = ctx.opts.tableRows ?? 30;
    for (const t of view.tables) {
      parts.push(`${t.title} (${t.rows.length} row${t.rows.length === 1 ? '' : 's'}):`, '', mdTable(t.columns, t.rows.slice(0, maxRows)), '');
      if (t.rows.length > maxRows) parts.push(`_${t.rows.length - maxRows} more rows: the session log holds the full result_`, '');
    }
    for (const b of view.texts) {
      const lines = b.text.split('\n');
      const body = lines.length > 80 ? `${lines.slice(0, 80).join('\n')}\n… (${lines.length - 80} more lines in the session log)` : b.text;
      if (b.title) parts.push(`${b.title}:`, '');
      parts.push(fence('text', body), '');
    }
  } else if (item.result !== undefined) {
    // No typed result (an imported conversation, or one too large for the log): the text as it came.
    parts.push('**Result**', '');
    if (item.structuredOmitted) parts.push(`_${item.structuredOmitted}_`, '');
    const lines = item.result.split('\n');
    parts.push(fence('text', lines.length > 200 ? `${lines.slice(0, 200).join('\n')}\n… (${lines.length - 200} more lines in the session log)` : item.result), '');
  }
  parts.push('</details>');
  return parts.join('\n');
}

export async function conversationMarkdown(conv: Conversation, opts: MarkdownOptions = {}): Promise<string> {
  const out: string[] = [`# ${conv.title.replace(/</g, '&lt;')}`, ''];
  const meta: [string, string][] = [['Date', displayDate(conv.date)]];
  if (conv.model) meta.push(['Model', conv.model]);
  if (conv.llm) meta.push(['LLM', conv.llm]);
  if (conv.session) meta.push(['Session', `\`${conv.session}\``]);
  if (conv.source) meta.push(['Source', conv.source]);
  out.push(meta.map(([k, v]) => `- **${k}:** ${v}`).join('\n'), '');
  const ctx: Ctx = { opts, plotCount: 0, plotPrefix: '' };
  let n = 0;
  for (const turn of conv.turns) {
    if (turn.user === undefined && turn.items.length === 0) continue;
    if (turn.user !== undefined) {
      n++;
      out.push(`## ${n}. ${embedText(turnHeading(turn.user))}`, '');
      out.push(`**${turn.userRole && turn.userRole !== 'user' ? turn.userRole[0].toUpperCase() + turn.userRole.slice(1) : 'You'}:**`, '', quote(embedText(turn.user)), '');
    } else {
      out.push('## Before the first message', '');
    }
    for (const item of turn.items) {
      if (item.kind === 'assistant') {
        if (!item.text.trim()) continue;
        out.push('**Assistant:**', '', embedText(item.text.trim()), '');
      } else if (item.kind === 'note') {
        out.push(item.tone === 'error' ? `**Error:** ${embedText(item.text.trim())}` : embedText(item.text.trim()), '');
      } else {
        out.push(await toolMarkdown(item, ctx), '');
      }
    }
  }
  return `${out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

/** A file name in `dir` that does not exist yet: <date>-<slug>.md, then -2, -3... */
export function freshPath(dir: string, base: string, exists: (p: string) => boolean): string {
  let p = join(dir, `${base}.md`);
  for (let k = 2; exists(p); k++) p = join(dir, `${base}-${k}.md`);
  return p;
}

/** Writes the conversation to `file` (plots beside it in <name>-plots/). */
export async function writeConversation(conv: Conversation, file: string, opts: Omit<MarkdownOptions, 'plotsDir' | 'mdDir'> = {}): Promise<string> {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true });
  const plotsDir = join(dir, `${basename(file, '.md')}-plots`);
  const md = await conversationMarkdown(conv, { ...opts, plotsDir, mdDir: dir });
  writeFileSync(file, md);
  return file;
}
