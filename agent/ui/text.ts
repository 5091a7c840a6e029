// Styled terminal text as data: a line is a list of spans. Markdown, heatmaps and tool cards are
// laid out into lines at a given width (so layout is testable without a terminal) and drawn by <Lines>.

export interface Span {
  text: string;
  bold?: boolean;
  italic?: boolean;
  underline?: boolean;
  strike?: boolean;
  dim?: boolean;
  inverse?: boolean;
  color?: string;
  bg?: string;
}
export type Line = Span[];
export type Style = Omit<Span, 'text'>;

/** Terminal cells of one code point: 0 for combining marks, 2 for wide East Asian and emoji. */
export function charWidth(cp: number): number {
  if (cp === 0 || cp < 32 || (cp >= 0x7f && cp < 0xa0)) return 0;
  if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0xfe00 && cp <= 0xfe0f)) return 0;
  if (
    (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf && cp !== 0x303f) || (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) || (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1f64f) || (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd)
  ) return 2;
  return 1;
}

/** Width of a string in terminal cells (no escape sequences expected). */
export function strWidth(s: string): number {
  let w = 0;
  for (const ch of s) w += charWidth(ch.codePointAt(0)!);
  return w;
}

export const lineWidth = (line: Line): number => line.reduce((n, s) => n + strWidth(s.text), 0);
export const lineText = (line: Line): string => line.map((s) => s.text).join('');
export const linesText = (lines: Line[]): string => lines.map((l) => lineText(l).replace(/\s+$/, '')).join('\n');

/** Cuts s to at most `width` cells, ending with "…" when cut. */
export function truncate(s: string, width: number): string {
  if (width <= 0) return '';
  if (strWidth(s) <= width) return s;
  let out = '';
  let w = 0;
  for (const ch of s) {
    const cw = charWidth(ch.codePointAt(0)!);
    if (w + cw > width - 1) break;
    out += ch;
    w += cw;
  }
  return `${out}…`;
}

export const padEnd = (s: string, width: number): string => s + ' '.repeat(Math.max(0, width - strWidth(s)));
export const padStart = (s: string, width: number): string => ' '.repeat(Math.max(0, width - strWidth(s))) + s;

/** Cuts a line of spans to `width` cells. */
export function truncateLine(line: Line, width: number): Line {
  if (lineWidth(line) <= width) return line;
  const out: Line = [];
  let left = width - 1;
  for (const s of line) {
    const w = strWidth(s.text);
    if (w <= left) {
      out.push(s);
      left -= w;
      continue;
    }
    if (left > 0) out.push({ ...s, text: truncate(s.text, left + 1).slice(0, -1) });
    break;
  }
  out.push({ text: '…', dim: true });
  return out;
}

/**
 * Word-wraps spans into lines of at most `width` cells. `first` / `rest` are prefixes (bullets,
 * quote bars, indentation) put before the first and the following lines.
 */
export function wrapSpans(spans: Line, width: number, first: Line = [], rest: Line = first): Line[] {
  const lines: Line[] = [];
  let cur: Line = [...first];
  let curW = lineWidth(first);
  let lineHasWord = false;
  const restW = lineWidth(rest);
  const push = () => {
    lines.push(trimTrailingSpace(cur));
    cur = [...rest];
    curW = restW;
    lineHasWord = false;
  };
  for (const span of spans) {
    // Tokens: runs of spaces and runs of non-spaces; explicit newlines break lines.
    for (const tok of span.text.split(/(\n| +)/)) {
      if (tok === '') continue;
      if (tok === '\n') {
        push();
        continue;
      }
      const w = strWidth(tok);
      if (tok.startsWith(' ')) {
        if (!lineHasWord) continue;
        if (curW + w > width) {
          push();
          continue;
        }
        cur.push({ ...span, text: tok });
        curW += w;
        continue;
      }
      if (curW + w > width && lineHasWord) push();
      // A word longer than the line: cut it into pieces.
      let word = tok;
      while (curW + strWidth(word) > width && strWidth(word) > 0) {
        const room = Math.max(1, width - curW);
        let piece = '';
        let pw = 0;
        for (const ch of word) {
          const cw = charWidth(ch.codePointAt(0)!);
          if (pw + cw > room) break;
          piece += ch;
          pw += cw;
        }
        if (piece === '') piece = [...word][0];
        cur.push({ ...span, text: piece });
        curW += strWidth(piece);
        lineHasWord = true;
        word = word.slice(piece.length);
        if (word) push();
      }
      if (word) {
        cur.push({ ...span, text: word });
        curW += strWidth(word);
        lineHasWord = true;
      }
    }
  }
  if (lineHasWord || lines.length === 0 || cur.length > rest.length) lines.push(trimTrailingSpace(cur));
  return lines;
}

function trimTrailingSpace(line: Line): Line {
  const out = [...line];
  while (out.length && /^ +$/.test(out[out.length - 1].text) && !out[out.length - 1].bg && !out[out.length - 1].inverse) out.pop();
  return out;
}

/** Compact display of a number: 3-4 significant digits, exponent for very small/large. */
export function fmtNum(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined) return '–';
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'NaN' : x > 0 ? '∞' : '-∞';
  if (Number.isInteger(x) && Math.abs(x) < 1e7) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e7)) return x.toExponential(Math.max(0, digits - 2));
  return String(Number(x.toPrecision(digits)));
}
