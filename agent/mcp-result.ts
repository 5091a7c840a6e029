// Reading NeuroScope's MCP tool results back into data. The server writes a result as compact JSON
// with grids and record lists lifted out below it as tables ("[top (10 rows): see below]" in the
// JSON, then "top (10 rows):\n| site | effect | ..." after a blank line). The built-in protocols read
// numbers this way, from exactly the text any MCP client gets.

export interface Table {
  columns: string[];
  rows: string[][];
}

export interface ParsedResult {
  /** The JSON head with lifted placeholders replaced by their tables ({columns, rows}) or text. */
  data: Record<string, unknown> | unknown[] | string | number | boolean | null;
  tables: Record<string, Table | string>;
}

function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (q) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') q = false;
      else cur += ch;
    } else if (ch === '"') q = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function splitMdRow(line: string): string[] {
  const inner = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  const cells: string[] = [];
  let cur = '';
  for (let i = 0; i < inner.length; i++) {
    if (inner[i] === '\\' && i + 1 < inner.length) {
      cur += inner[++i];
    } else if (inner[i] === '|') {
      cells.push(cur.trim());
      cur = '';
    } else cur += inner[i];
  }
  cells.push(cur.trim());
  return cells;
}

/** A Markdown or CSV table as text -> columns and rows (trailing "… N more rows" notes dropped). */
export function parseTable(text: string): Table {
  const lines = text.split('\n').filter((l) => l.trim() !== '' && !/^… \d+ more rows/.test(l));
  if (lines.length === 0) return { columns: [], rows: [] };
  if (lines[0].trim().startsWith('|')) {
    const columns = splitMdRow(lines[0]);
    const rows = lines.slice(1).filter((l) => !/^\|(\s*-+\s*\|)+\s*$/.test(l.trim())).map(splitMdRow);
    return { columns, rows };
  }
  const [head, ...rest] = lines;
  return { columns: splitCsvLine(head), rows: rest.map(splitCsvLine) };
}

/** Rows as objects keyed by column name. */
export function tableRecords(t: Table): Record<string, string>[] {
  return t.rows.map((r) => Object.fromEntries(t.columns.map((c, i) => [c, r[i] ?? ''])));
}

const PLACEHOLDER = /^\[(.+): see below\]$/;

export function parseToolText(text: string): ParsedResult {
  const cut = text.indexOf('\n\n');
  const head = cut < 0 ? text : text.slice(0, cut);
  let data: ParsedResult['data'];
  try {
    data = JSON.parse(head);
  } catch {
    return { data: text, tables: {} };
  }
  const tables: ParsedResult['tables'] = {};
  const titles: string[] = [];
  const collect = (v: unknown) => {
    if (typeof v === 'string') {
      const m = PLACEHOLDER.exec(v);
      if (m) titles.push(m[1]);
    } else if (Array.isArray(v)) v.forEach(collect);
    else if (v && typeof v === 'object') Object.values(v).forEach(collect);
  };
  collect(data);
  if (cut >= 0) {
    const rest = text.slice(cut);
    const at = titles.map((t) => ({ t, i: rest.indexOf(`\n\n${t}:\n`) })).filter((x) => x.i >= 0).sort((a, b) => a.i - b.i);
    at.forEach((x, k) => {
      const start = x.i + x.t.length + 4;
      const end = k + 1 < at.length ? at[k + 1].i : rest.length;
      const body = rest.slice(start, end);
      const isTable = /^\s*\|/.test(body) || /,/.test(body.split('\n')[0] ?? '');
      tables[x.t] = isTable ? parseTable(body) : body;
    });
  }
  const fill = (v: unknown): unknown => {
    if (typeof v === 'string') {
      const m = PLACEHOLDER.exec(v);
      return m && tables[m[1]] !== undefined ? tables[m[1]] : v;
    }
    if (Array.isArray(v)) return v.map(fill);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)]));
    return v;
  };
  return { data: fill(data) as ParsedResult['data'], tables };
}

export const EXPERIMENT_ID = /\bexp_[A-Za-z0-9]+\b/g;
export const RUN_ID = /\brun_[A-Za-z0-9]+\b/g;

/** Experiment and run ids mentioned in a text, in order of first mention. */
export function idsIn(text: string): { experimentIds: string[]; runIds: string[] } {
  return { experimentIds: [...new Set(text.match(EXPERIMENT_ID) ?? [])], runIds: [...new Set(text.match(RUN_ID) ?? [])] };
}
