// The one text rendering of a tool result, for language models (MCP `content`). It is made from the
// same object the client gets as `structuredContent`, and its layout depends only on the result's
// shape: values as "name: value" lines, lists inline, long texts as blocks, lists of records and
// grids always as Markdown tables with their row count. Long parts are summarised, never cut
// silently: a table shows its first rows and says how many more there are and where to read them
// (structuredContent, and for experiments the SQL that returns every row).
import { formatValue, resultParts, type ResultPart } from '../tools/result-parts.ts';

/** Rows of a table or grid shown in the text (the rest is counted and pointed to). */
export const TEXT_ROWS = 40;
/** Columns of a grid shown in the text. */
export const TEXT_COLS = 32;
/** Items of an inline list shown in the text. */
export const TEXT_ITEMS = 64;
/** Run ids of one list shown in the text; a longer list is counted, with the SQL that returns it. */
export const TEXT_RUN_IDS = 4;
/** Characters of one table cell. */
const CELL_CHARS = 160;

const mdEscape = (s: string) => s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

function cell(v: unknown): string {
  const s = formatValue(v);
  return mdEscape(s.length > CELL_CHARS ? `${s.slice(0, CELL_CHARS - 1)}… (${s.length} characters; full value in structuredContent)` : s);
}

function mdTable(columns: string[], rows: unknown[][]): string {
  return [
    `| ${columns.map(mdEscape).join(' | ')} |`,
    `|${columns.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${columns.map((_, j) => cell(r[j])).join(' | ')} |`),
  ].join('\n');
}

/** Where the rest of a long part is: the structured result, and the experiment's rows in SQL. */
function restHint(path: string, experimentId: string | null): string {
  const sql = experimentId ? `; every stored row: query_activations {"sql": "SELECT * FROM results WHERE experiment_id = '${experimentId}'"}` : '';
  return `structuredContent.${path} has all of them${sql}`;
}

const RUN_ID = /^run_[A-Za-z0-9]+$/;

/**
 * A long list of run ids (one per prompt: hundreds after a few sweeps) as a count, its ends, and
 * where every id is: for an experiment's runIds the SQL that lists them with their prompts (tools
 * store their run ids in the experiment's params under the same path as in their result).
 */
function runList(name: string, ids: string[], experimentId: string | null): string {
  const where = experimentId && /^runIds(\.\w+)?$/.test(name)
    ? `each with its prompt: query_activations {"sql": "SELECT r.run_id, r.prompt FROM (SELECT unnest(l) AS run_id, generate_subscripts(l, 1) AS i FROM (SELECT CAST(json_extract_string(params, '$.${name}[*]') AS VARCHAR[]) AS l FROM experiments WHERE experiment_id = '${experimentId}')) u JOIN runs r USING (run_id) ORDER BY u.i"}`
    : `structuredContent.${name} has all of them`;
  return `${name}: ${ids.length} runs (${ids[0]}, ${ids[1]}, … ${ids[ids.length - 1]}); ${where}`;
}

function renderPart(p: ResultPart, experimentId: string | null): string {
  const name = p.path || 'result';
  switch (p.kind) {
    case 'value':
      return `${name}: ${formatValue(p.value)}`;
    case 'list': {
      if (p.values.length > TEXT_RUN_IDS && p.values.every((v) => typeof v === 'string' && RUN_ID.test(v))) return runList(name, p.values as string[], experimentId);
      const shown = p.values.slice(0, TEXT_ITEMS).map(formatValue);
      const more = p.values.length - shown.length;
      return `${name}: [${shown.join(', ')}${more > 0 ? `, … ${more} more (${p.values.length} in all; ${restHint(name, null)})` : ''}]`;
    }
    case 'text':
      return `${name}:\n${p.text}`;
    case 'table': {
      const rows = p.rows.slice(0, TEXT_ROWS);
      const more = p.rows.length - rows.length;
      const head = `${name} (${p.rows.length} row${p.rows.length === 1 ? '' : 's'}):`;
      if (p.rows.length === 0) return `${head} none`;
      return [head, mdTable(p.columns, rows), ...(more > 0 ? [`… ${more} more rows; ${restHint(name, experimentId)}`] : [])].join('\n');
    }
    case 'grid': {
      const g = p.grid;
      const R = g.rows.labels.length;
      const C = g.cols.labels.length;
      const cols = g.cols.labels.slice(0, TEXT_COLS);
      const rows = g.rows.labels.slice(0, TEXT_ROWS).map((label, i) => [label, ...g.values[i].slice(0, TEXT_COLS)]);
      const notes: string[] = [];
      if (R > TEXT_ROWS) notes.push(`${R - TEXT_ROWS} more ${g.rows.name} rows`);
      if (C > TEXT_COLS) notes.push(`${C - TEXT_COLS} more ${g.cols.name} columns`);
      return [
        `${name} (${g.rows.name} x ${g.cols.name}, ${R} x ${C}):`,
        mdTable([`${g.rows.name} \\ ${g.cols.name}`, ...cols], rows),
        ...(notes.length ? [`… ${notes.join(' and ')}; ${restHint(name, experimentId)}`] : []),
      ].join('\n');
    }
  }
}

/** The text of a tool result: value and list lines first, then texts, tables and grids, each once. */
export function renderResult(result: Record<string, unknown>): string {
  const parts = resultParts(result);
  const experimentId = typeof result.experimentId === 'string' ? result.experimentId : null;
  const lines = parts.filter((p) => p.kind === 'value' || p.kind === 'list').map((p) => renderPart(p, experimentId));
  const blocks = parts.filter((p) => p.kind !== 'value' && p.kind !== 'list').map((p) => renderPart(p, experimentId));
  return [lines.join('\n'), ...blocks].filter((s) => s !== '').join('\n\n');
}
