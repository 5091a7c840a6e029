// A compact Markdown renderer for the terminal: headings, paragraphs, bold/italic/strike, inline
// code, links, lists (nested, numbered, task lists), block quotes, fenced code, tables (aligned, shrunk
// to the width), rules and <details>/<summary>. Output is lines of styled spans at a given width.
import { lineWidth, padEnd, padStart, strWidth, truncate, wrapSpans, type Line, type Span, type Style } from './text.ts';

export const MD_COLORS = {
  h1: 'magentaBright',
  h2: 'cyanBright',
  h3: 'cyan',
  code: 'yellow',
  codeBlock: 'yellowBright',
  link: 'blueBright',
  quote: 'gray',
  rule: 'gray',
  tableBorder: 'gray',
};

/** Inline Markdown to spans. */
export function inline(text: string, base: Style = {}): Span[] {
  const out: Span[] = [];
  const push = (t: string, st: Style) => {
    if (!t) return;
    const last = out[out.length - 1];
    if (last && sameStyle(last, st)) last.text += t;
    else out.push({ ...st, text: t });
  };
  parseInline(text, base, push);
  return out;
}

function sameStyle(a: Style, b: Style): boolean {
  const keys: (keyof Style)[] = ['bold', 'italic', 'underline', 'strike', 'dim', 'inverse', 'color', 'bg'];
  return keys.every((k) => (a[k] ?? undefined) === (b[k] ?? undefined));
}

function parseInline(s: string, st: Style, push: (t: string, st: Style) => void): void {
  let i = 0;
  let buf = '';
  const flush = () => {
    push(buf, st);
    buf = '';
  };
  while (i < s.length) {
    const c = s[i];
    // Escapes.
    if (c === '\\' && i + 1 < s.length && /[\\`*_{}[\]()#+\-.!|~<>]/.test(s[i + 1])) {
      buf += s[i + 1];
      i += 2;
      continue;
    }
    // Inline code: `x` or ``x``.
    if (c === '`') {
      const ticks = /^`+/.exec(s.slice(i))![0];
      const end = s.indexOf(ticks, i + ticks.length);
      if (end > 0) {
        flush();
        push(s.slice(i + ticks.length, end).replace(/^ (.*) $/, '$1'), { ...st, color: MD_COLORS.code });
        i = end + ticks.length;
        continue;
      }
    }
    // Images and links.
    if ((c === '!' && s[i + 1] === '[') || c === '[') {
      const img = c === '!';
      const m = /^!?\[([^\]]*)\]\(([^)\s]+)(?:\s+"[^"]*")?\)/.exec(s.slice(i));
      if (m) {
        flush();
        if (img) {
          push(`[image: ${m[1] || m[2]}]`, { ...st, color: MD_COLORS.link });
          push(` (${m[2]})`, { ...st, dim: true });
        } else {
          parseInline(m[1], { ...st, color: MD_COLORS.link, underline: true }, push);
          if (m[2] !== m[1] && !m[2].startsWith('#')) push(` (${m[2]})`, { ...st, dim: true });
        }
        i += m[0].length;
        continue;
      }
    }
    // Autolinks <https://...>.
    if (c === '<') {
      const m = /^<((?:https?|mailto|file):[^>\s]+)>/.exec(s.slice(i));
      if (m) {
        flush();
        push(m[1], { ...st, color: MD_COLORS.link, underline: true });
        i += m[0].length;
        continue;
      }
      // Inline HTML tags we understand as styling; others are dropped.
      const tag = /^<\/?(b|strong|i|em|code|br|kbd|sub|sup|summary|details)\s*\/?>/i.exec(s.slice(i));
      if (tag) {
        flush();
        if (tag[1].toLowerCase() === 'br') push('\n', st);
        i += tag[0].length;
        continue;
      }
    }
    // Strong / emphasis / strike.
    if (c === '*' || c === '_' || c === '~') {
      const run = new RegExp(`^\\${c}+`).exec(s.slice(i))![0];
      const n = c === '~' ? (run.length >= 2 ? 2 : 0) : Math.min(run.length, 3);
      const prev = i > 0 ? s[i - 1] : ' ';
      const next = s[i + run.length] ?? ' ';
      const canOpen = n > 0 && !/\s/.test(next) && !(c === '_' && /\w/.test(prev));
      if (canOpen) {
        const delim = c.repeat(n);
        const close = findClose(s, i + n, delim, c);
        if (close > i + n) {
          flush();
          const inner = s.slice(i + n, close);
          const style: Style = c === '~' ? { ...st, strike: true, dim: true }
            : n === 3 ? { ...st, bold: true, italic: true } : n === 2 ? { ...st, bold: true } : { ...st, italic: true };
          parseInline(inner, style, push);
          i = close + n;
          continue;
        }
      }
      buf += run;
      i += run.length;
      continue;
    }
    buf += c;
    i++;
  }
  flush();
}

function findClose(s: string, from: number, delim: string, c: string): number {
  let j = from;
  while (j < s.length) {
    const k = s.indexOf(delim, j);
    if (k < 0) return -1;
    const before = s[k - 1];
    const after = s[k + delim.length] ?? ' ';
    // A closing run: not preceded by space, and (for _) not followed by a word character.
    if (!/\s/.test(before) && !(c === '_' && /\w/.test(after)) && s[k + delim.length] !== c) return k;
    j = k + 1;
  }
  return -1;
}

const FENCE = /^(\s*)(```+|~~~+)\s*([\w+#.-]*)/;
const HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
const LIST = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;

function splitRow(line: string): string[] {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells: string[] = [];
  let cur = '';
  let inCode = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '\\' && s[i + 1] === '|') {
      cur += '|';
      i++;
      continue;
    }
    if (ch === '`') inCode = !inCode;
    if (ch === '|' && !inCode) {
      cells.push(cur.trim());
      cur = '';
      continue;
    }
    cur += ch;
  }
  cells.push(cur.trim());
  return cells;
}

const isNumeric = (s: string) => /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?%?$/i.test(s.trim()) || /^-?(NaN|Inf|∞)$/.test(s.trim());

const isNumericColumn = (rows: string[][], j: number) => rows.length > 0 && rows.every((r) => !r[j] || isNumeric(r[j]));
const cellsWidth = (rows: string[][], j: number) => Math.max(1, ...rows.map((r) => lineWidth(inline(r[j] ?? '', {}))));
/** The fewest cells a column may shrink to: a number is never cut (a cut number reads as another number). */
const columnFloor = (header: string[], rows: string[][], j: number) =>
  isNumericColumn(rows, j) ? Math.max(cellsWidth(rows, j), Math.min(lineWidth(inline(header[j] ?? '', {})), 8)) : 3;

/**
 * How many leading columns of a table fit in `width` with their numbers whole and their text cut to
 * no fewer than 8 cells; the caller says which columns it left out.
 */
export function columnsThatFit(header: string[], rows: string[][], width: number): number {
  let used = 1;
  for (let j = 0; j < header.length; j++) {
    const natural = Math.max(lineWidth(inline(header[j], {})), cellsWidth(rows, j));
    const least = isNumericColumn(rows, j) ? columnFloor(header, rows, j) : Math.min(natural, 8);
    if (j > 0 && used + least + 3 > width) return j;
    used += least + 3;
  }
  return header.length;
}

/** A Markdown table laid out with box characters, columns shrunk to fit `width` (text before numbers). */
export function renderTable(header: string[], rows: string[][], width: number, aligns: ('left' | 'right' | 'center' | null)[] = []): Line[] {
  const ncol = Math.max(header.length, ...rows.map((r) => r.length));
  const cellSpans = (s: string, bold = false) => inline(s, bold ? { bold: true } : {});
  const head = Array.from({ length: ncol }, (_, j) => cellSpans(header[j] ?? '', true));
  const body = rows.map((r) => Array.from({ length: ncol }, (_, j) => cellSpans(r[j] ?? '')));
  const natural = Array.from({ length: ncol }, (_, j) => Math.max(1, lineWidth(head[j]), ...body.map((r) => lineWidth(r[j]))));
  const align = Array.from({ length: ncol }, (_, j) => aligns[j] ?? (isNumericColumn(rows, j) ? 'right' : 'left'));
  // Borders: "│ a │ b │" = 3 * ncol + 1 cells besides the content.
  const budget = Math.max(ncol, width - (3 * ncol + 1));
  const widths = [...natural];
  const floors = Array.from({ length: ncol }, (_, j) => Math.min(natural[j], columnFloor(header, rows, j)));
  let total = widths.reduce((a, b) => a + b, 0);
  // Shrink the widest column that may still shrink; only when none may is a number cut.
  while (total > budget) {
    const open = widths.map((w, j) => (w > floors[j] ? w : -1));
    let j = open.indexOf(Math.max(...open));
    if (open[j] < 0) j = widths.indexOf(Math.max(...widths));
    if (widths[j] <= 3) break;
    widths[j]--;
    total--;
  }
  const b = { color: MD_COLORS.tableBorder };
  const border = (l: string, m: string, r: string): Line => [{ ...b, text: l + widths.map((w) => '─'.repeat(w + 2)).join(m) + r }];
  const row = (cells: Line[]): Line => {
    const out: Line = [{ ...b, text: '│' }];
    cells.forEach((spans, j) => {
      const w = widths[j];
      const fitted = fitSpans(spans, w);
      const pad = w - lineWidth(fitted);
      const left = align[j] === 'right' ? pad : align[j] === 'center' ? Math.floor(pad / 2) : 0;
      out.push({ text: ' '.repeat(left + 1) }, ...fitted, { text: ' '.repeat(pad - left + 1) }, { ...b, text: '│' });
    });
    return out;
  };
  return [border('┌', '┬', '┐'), row(head), border('├', '┼', '┤'), ...body.map(row), border('└', '┴', '┘')];
}

function fitSpans(spans: Line, w: number): Line {
  if (lineWidth(spans) <= w) return spans;
  const out: Line = [];
  let left = w;
  for (const s of spans) {
    const sw = strWidth(s.text);
    if (sw < left) {
      out.push(s);
      left -= sw;
    } else {
      out.push({ ...s, text: truncate(s.text, left) });
      break;
    }
  }
  return out;
}

/** Renders Markdown to terminal lines of at most `width` cells. */
export function renderMarkdown(md: string, width = 80): Line[] {
  width = Math.max(10, width);
  const src = md.replace(/\r\n?/g, '\n').replace(/\t/g, '    ').split('\n');
  const out: Line[] = [];
  const blank = () => {
    if (out.length && out[out.length - 1].length) out.push([]);
  };
  let i = 0;
  while (i < src.length) {
    const line = src[i];
    if (line.trim() === '') {
      blank();
      i++;
      continue;
    }
    // Fenced code.
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[2];
      const lang = fence[3];
      const code: string[] = [];
      i++;
      while (i < src.length && !src[i].trimStart().startsWith(marker)) code.push(src[i++]);
      i++;
      blank();
      out.push([{ text: `╭─${lang ? ` ${lang} ` : ''}`, color: MD_COLORS.rule, dim: true }]);
      for (const c of code) {
        const bar: Line = [{ text: '│ ', color: MD_COLORS.rule, dim: true }];
        out.push(...wrapSpans([{ text: c.replace(/ /g, '\u00a0'), color: MD_COLORS.codeBlock }], width, bar).map(nbspBack));
      }
      out.push([{ text: '╰─', color: MD_COLORS.rule, dim: true }]);
      out.push([]);
      continue;
    }
    // Headings.
    const h = HEADING.exec(line);
    if (h) {
      blank();
      const level = h[1].length;
      const style: Style = level === 1 ? { bold: true, color: MD_COLORS.h1 } : level === 2 ? { bold: true, color: MD_COLORS.h2 } : { bold: true, color: MD_COLORS.h3 };
      const spans = inline(h[2], style);
      const wrapped = wrapSpans(spans, width, level <= 2 ? [] : [{ text: '#'.repeat(level) + ' ', ...style, dim: true }], []);
      out.push(...wrapped);
      if (level === 1) out.push([{ text: '═'.repeat(Math.min(width, Math.max(...wrapped.map(lineWidth)))), color: MD_COLORS.h1 }]);
      else if (level === 2) out.push([{ text: '─'.repeat(Math.min(width, Math.max(...wrapped.map(lineWidth)))), color: MD_COLORS.h2, dim: true }]);
      i++;
      continue;
    }
    if (RULE.test(line)) {
      blank();
      out.push([{ text: '─'.repeat(width), color: MD_COLORS.rule, dim: true }]);
      i++;
      continue;
    }
    // Tables: a header row, a separator, body rows.
    if (line.includes('|') && i + 1 < src.length && TABLE_SEP.test(src[i + 1]) && src[i + 1].includes('-')) {
      const header = splitRow(line);
      const aligns = splitRow(src[i + 1]).map((c) => (c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : c.startsWith(':') ? 'left' : null));
      i += 2;
      const rows: string[][] = [];
      while (i < src.length && src[i].includes('|') && src[i].trim() !== '') rows.push(splitRow(src[i++]));
      blank();
      out.push(...renderTable(header, rows, width, aligns));
      continue;
    }
    // <details> / <summary>: summary shown as a disclosure line, tags dropped.
    if (/^\s*<\/?details>\s*$/i.test(line)) {
      i++;
      continue;
    }
    const summary = /^\s*<summary>(.*)<\/summary>\s*$/i.exec(line);
    if (summary) {
      out.push(...wrapSpans(inline(summary[1], { bold: true }), width, [{ text: '▸ ', bold: true }], [{ text: '  ' }]));
      i++;
      continue;
    }
    // Block quotes (content rendered recursively).
    if (/^\s*>/.test(line)) {
      const inner: string[] = [];
      while (i < src.length && /^\s*>/.test(src[i])) inner.push(src[i++].replace(/^\s*> ?/, ''));
      for (const l of renderMarkdown(inner.join('\n'), width - 2)) out.push([{ text: '│ ', color: MD_COLORS.quote }, ...l.map((s) => ({ ...s, italic: s.italic ?? !s.color }))]);
      continue;
    }
    // Lists.
    const li = LIST.exec(line);
    if (li) {
      while (i < src.length) {
        const m = LIST.exec(src[i]);
        if (!m) break;
        const depth = Math.floor(m[1].length / 2);
        let text = m[3];
        i++;
        // Continuation lines (indented, not a new item).
        while (i < src.length && src[i].trim() !== '' && !LIST.exec(src[i]) && /^\s+\S/.test(src[i])) text += ` ${src[i++].trim()}`;
        let marker = /\d/.test(m[2]) ? `${m[2].replace(')', '.')} ` : ['• ', '◦ ', '▪ '][depth % 3];
        const task = /^\[([ xX])\]\s+(.*)$/.exec(text);
        if (task) {
          marker = task[1] === ' ' ? '☐ ' : '☑ ';
          text = task[2];
        }
        const indent = '  '.repeat(depth);
        const first: Line = [{ text: indent }, { text: marker, color: 'cyan' }];
        out.push(...wrapSpans(inline(text), width, first, [{ text: indent + ' '.repeat(strWidth(marker)) }]));
        // A blank line between items of a loose list does not end it.
        if (i + 1 < src.length && src[i].trim() === '' && LIST.exec(src[i + 1])) i++;
      }
      continue;
    }
    // Paragraph: consecutive lines until a blank line or another block; hard breaks kept.
    const para: string[] = [line];
    i++;
    while (i < src.length && src[i].trim() !== '' && !FENCE.test(src[i]) && !HEADING.test(src[i]) && !/^\s*>/.test(src[i]) && !LIST.test(src[i]) && !RULE.test(src[i]) &&
      !(src[i].includes('|') && i + 1 < src.length && TABLE_SEP.test(src[i + 1]))) para.push(src[i++]);
    const text = para.map((p, k) => (k < para.length - 1 && (/ {2,}$/.test(p) || p.endsWith('\\')) ? `${p.replace(/\\$|\s+$/, '')}<br>` : p.trim())).join(' ');
    out.push(...wrapSpans(inline(text), width));
  }
  while (out.length && out[out.length - 1].length === 0) out.pop();
  return out;
}

function nbspBack(line: Line): Line {
  return line.map((s) => ({ ...s, text: s.text.replace(/\u00a0/g, ' ') }));
}

export { padEnd, padStart };
