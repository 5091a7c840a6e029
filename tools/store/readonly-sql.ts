// The read-only, bounded SQL tool. Defence in depth, cheapest and clearest first:
//   1. text: one leading keyword from an allow-list; no URLs in strings; no file-reading functions
//      by name (gives precise refusal messages);
//   2. DuckDB's own parser: exactly one statement (extractStatements), and json_serialize_sql's
//      AST (parse only, nothing is bound or read) is walked for table functions, file-like table
//      names and URL constants;
//   3. the prepared statement's type must be SELECT or EXPLAIN;
//      and scalar calls that would build one huge value (range(50000000), repeat(s, 1e6)) are
//      refused, since DuckDB cannot interrupt inside one call (value-size.ts);
//   4. execution inside BEGIN TRANSACTION READ ONLY on a fresh connection, interrupted at the
//      timeout, which covers reading the rows; rows are cut at maxRows and at a byte budget
//      measured before conversion (bounded-read.ts); DuckDB's memory_limit and threads are set
//      for the instance (store.ts);
//   5. underneath all of this the store's instance runs with enable_external_access=false and a
//      locked configuration (see store.ts), so even a missed case cannot read or write files.
import { StatementType, type DuckDBConnection, type DuckDBInstance, type DuckDBPreparedStatement } from '@duckdb/node-api';
import { sqlString } from './schema.ts';
import type { QueryOptions, QueryResult } from './types.ts';
import { readBounded } from './bounded-read.ts';
import { oversizedValue } from './value-size.ts';

export type SqlErrorCode = 'refused' | 'timeout' | 'invalid';

export class SqlToolError extends Error {
  constructor(
    readonly code: SqlErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SqlToolError';
  }
}

export const ALLOWED_STATEMENTS =
  'Allowed: one read-only statement: SELECT, WITH ... SELECT, FROM ... (DuckDB FROM-first), VALUES, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN [ANALYZE] of one of those, over the store tables.';

const ALLOWED_KEYWORDS = new Set(['SELECT', 'WITH', 'FROM', 'VALUES', 'DESCRIBE', 'SHOW', 'SUMMARIZE', 'EXPLAIN']);

const FORBIDDEN_KEYWORDS = new Set([
  'INSERT', 'UPDATE', 'DELETE', 'MERGE', 'UPSERT', 'REPLACE', 'TRUNCATE', 'CREATE', 'DROP', 'ALTER', 'COMMENT',
  'ATTACH', 'DETACH', 'USE', 'COPY', 'EXPORT', 'IMPORT', 'INSTALL', 'LOAD', 'FORCE', 'SET', 'RESET', 'PRAGMA',
  'CALL', 'BEGIN', 'START', 'COMMIT', 'ROLLBACK', 'ABORT', 'END', 'CHECKPOINT', 'VACUUM', 'ANALYZE', 'PREPARE',
  'EXECUTE', 'DEALLOCATE',
]);

/** Table functions that only read the database's own data or generate values. */
export const ALLOWED_TABLE_FUNCTIONS = new Set([
  'range', 'generate_series', 'unnest', 'json_each', 'json_tree',
  'duckdb_tables', 'duckdb_columns', 'duckdb_views', 'duckdb_schemas', 'duckdb_types', 'duckdb_functions',
  'duckdb_constraints', 'duckdb_indexes', 'duckdb_keywords', 'duckdb_settings', 'duckdb_extensions',
  'pragma_table_info', 'pragma_show',
  'pragma_storage_info', 'pragma_database_size',
]);

// Functions that read files/URLs/other databases, run dynamic SQL or change state. Matched by name
// in the text (outside strings and comments) and in the AST, whether used as table or scalar function.
const FORBIDDEN_FUNCTION =
  /^(read_\w+|parquet_\w+|sqlite_\w+|postgres_\w+|mysql_\w+|iceberg_\w+|delta_\w+|\w+_scan|glob|sniff_csv|query|query_table|checkpoint|force_checkpoint|nextval|setval|load_aws_credentials|install_extension|load_extension)$/i;

const URL_IN_STRING = /^[a-z][a-z0-9+.-]*:\/\//i;

/** Splits SQL into code (strings and comments blanked) and the string literals it contains. */
export function scanSql(sql: string): { code: string; strings: string[] } {
  let code = '';
  const strings: string[] = [];
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i];
    const next = sql[i + 1];
    if (ch === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end;
      code += ' ';
    } else if (ch === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
      code += ' ';
    } else if (ch === "'") {
      let s = '';
      i++;
      while (i < sql.length) {
        if (sql[i] === "'" && sql[i + 1] === "'") {
          s += "'";
          i += 2;
        } else if (sql[i] === "'") {
          i++;
          break;
        } else s += sql[i++];
      }
      strings.push(s);
      code += "''";
    } else if (ch === '$' && next === '$') {
      const end = sql.indexOf('$$', i + 2);
      strings.push(sql.slice(i + 2, end < 0 ? sql.length : end));
      i = end < 0 ? sql.length : end + 2;
      code += "''";
    } else {
      code += ch;
      i++;
    }
  }
  return { code, strings };
}

function stripLeadingComments(sql: string): string {
  let s = sql.trimStart();
  while (s.startsWith('--') || s.startsWith('/*')) {
    const line = s.startsWith('--');
    const end = line ? s.indexOf('\n') : s.indexOf('*/');
    s = end < 0 ? '' : s.slice(end + (line ? 1 : 2)).trimStart();
  }
  return s;
}

function refuse(message: string): never {
  throw new SqlToolError('refused', message);
}

function leadingKeyword(code: string): string {
  const m = /^[\s(]*([A-Za-z_]+)/.exec(code);
  return m ? m[1].toUpperCase() : '';
}

/** Text-level checks; returns the SELECT-family statement to parse (EXPLAIN's inner statement). */
function checkText(sql: string): string {
  const { code, strings } = scanSql(sql);
  if (code.replace(/[\s;]/g, '') === '') refuse(`Empty query. ${ALLOWED_STATEMENTS}`);
  const kw = leadingKeyword(code);
  if (FORBIDDEN_KEYWORDS.has(kw)) refuse(`${kw} statements are not allowed: the SQL tool is read-only. ${ALLOWED_STATEMENTS}`);
  if (!ALLOWED_KEYWORDS.has(kw)) refuse(`Statements starting with "${kw || code.trim().slice(0, 20)}" are not allowed. ${ALLOWED_STATEMENTS}`);
  for (const s of strings) {
    if (URL_IN_STRING.test(s.trim())) refuse(`URLs ('${s.slice(0, 60)}') are not allowed: the SQL tool reads only the store's own tables. ${ALLOWED_STATEMENTS}`);
  }
  for (const m of code.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*\(/g)) {
    if (FORBIDDEN_FUNCTION.test(m[1])) {
      refuse(`Function ${m[1]}() is not allowed: the SQL tool cannot read files, URLs or other databases, run dynamic SQL or change state. ${ALLOWED_STATEMENTS}`);
    }
  }
  if (kw !== 'EXPLAIN') return sql;
  // EXPLAIN [ANALYZE] [(options)] <statement>: check the inner statement like a top-level one.
  const body = stripLeadingComments(sql);
  const m = /^EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^()]*\)\s*)?/i.exec(body);
  const inner = body.slice(m ? m[0].length : 'EXPLAIN'.length);
  const innerKw = leadingKeyword(scanSql(inner).code);
  if (innerKw === 'EXPLAIN' || !ALLOWED_KEYWORDS.has(innerKw)) {
    refuse(`EXPLAIN ${innerKw || '...'} is not allowed: EXPLAIN only wraps a read-only query. ${ALLOWED_STATEMENTS}`);
  }
  return inner;
}

type AstNode = { [key: string]: unknown };

function walkAst(node: unknown, visit: (n: AstNode) => void): void {
  if (Array.isArray(node)) for (const x of node) walkAst(x, visit);
  else if (node !== null && typeof node === 'object') {
    visit(node as AstNode);
    for (const v of Object.values(node)) walkAst(v, visit);
  }
}

/** Function nodes that are the call of a table function (FROM range(...)): they stream, so size checks skip them. */
const tableCalls = new WeakSet<object>();

function checkAstNode(n: AstNode): void {
  if (n.type === 'TABLE_FUNCTION') {
    if (n.function && typeof n.function === 'object') tableCalls.add(n.function);
    const fn = (n.function as AstNode | undefined)?.function_name;
    const name = String(fn ?? '').toLowerCase();
    if (!ALLOWED_TABLE_FUNCTIONS.has(name)) {
      refuse(`Table function ${name}() is not allowed: the SQL tool reads only the store's tables. Allowed table functions: ${[...ALLOWED_TABLE_FUNCTIONS].join(', ')}.`);
    }
  } else if (n.type === 'BASE_TABLE') {
    const name = String(n.table_name ?? '');
    // A table name with a path or extension character makes DuckDB try a file replacement scan.
    if (/[./\\:*?~]/.test(name)) refuse(`"${name}" looks like a file path: reading files is not allowed; query the store tables instead. ${ALLOWED_STATEMENTS}`);
  } else if (n.class === 'FUNCTION' && typeof n.function_name === 'string' && FORBIDDEN_FUNCTION.test(n.function_name)) {
    refuse(`Function ${n.function_name}() is not allowed: the SQL tool cannot read files, URLs or other databases, run dynamic SQL or change state. ${ALLOWED_STATEMENTS}`);
  } else if (n.class === 'FUNCTION' && !tableCalls.has(n)) {
    const why = oversizedValue(n);
    if (why) refuse(`${why}. DuckDB cannot interrupt a single function call, so the SQL tool refuses values that large before running.`);
  } else if (n.class === 'CONSTANT') {
    const v = (n.value as AstNode | undefined)?.value;
    if (typeof v === 'string' && URL_IN_STRING.test(v.trim())) refuse(`URLs ('${v.slice(0, 60)}') are not allowed: the SQL tool reads only the store's own tables.`);
  }
}

/** Parses `sql` with DuckDB (no binding, no I/O) and walks its AST. */
async function checkAst(conn: DuckDBConnection, sql: string): Promise<void> {
  const reader = await conn.runAndReadAll(`SELECT json_serialize_sql(${sqlString(sql)})`);
  const ast = JSON.parse(String(reader.getRows()[0][0])) as { error: boolean; error_message?: string; statements?: unknown[] };
  if (ast.error) {
    // json_serialize_sql only accepts SELECT-type statements, e.g. it rejects `WITH x AS (...) INSERT ...`.
    const msg = ast.error_message ?? 'not a SELECT statement';
    if (/only select/i.test(msg)) refuse(`Only read-only queries can run (DuckDB: ${msg}). ${ALLOWED_STATEMENTS}`);
    throw new SqlToolError('invalid', `Could not parse the query: ${msg}`);
  }
  if ((ast.statements?.length ?? 0) !== 1) refuse(`Exactly one statement is allowed. ${ALLOWED_STATEMENTS}`);
  walkAst(ast.statements, checkAstNode);
}

/**
 * Validates `sql` on `conn` and returns it prepared. Throws SqlToolError('refused') with a message
 * saying what was refused and what is allowed.
 */
export async function prepareReadOnly(conn: DuckDBConnection, sql: string): Promise<DuckDBPreparedStatement> {
  const inner = checkText(sql);
  let count: number;
  try {
    count = (await conn.extractStatements(sql)).count;
  } catch (e) {
    throw new SqlToolError('invalid', `Could not parse the query: ${(e as Error).message}`);
  }
  if (count !== 1) refuse(`Multiple statements are not allowed (found ${count}); send one statement per call. ${ALLOWED_STATEMENTS}`);
  await checkAst(conn, inner);
  let prepared: DuckDBPreparedStatement;
  try {
    prepared = await conn.prepare(sql);
  } catch (e) {
    throw engineError(e);
  }
  const type = prepared.statementType;
  if (type !== StatementType.SELECT && type !== StatementType.EXPLAIN) {
    refuse(`Statement type ${StatementType[type] ?? type} is not allowed. ${ALLOWED_STATEMENTS}`);
  }
  if (prepared.parameterCount > 0) refuse('Query parameters ($1, ?) are not supported: inline the values.');
  return prepared;
}

/** Maps engine errors: sandbox and read-only violations are refusals, the rest invalid queries. */
function engineError(e: unknown): SqlToolError {
  const msg = (e as Error).message ?? String(e);
  if (/^Permission Error|file system operations are disabled|external access/i.test(msg)) {
    return new SqlToolError('refused', `Refused by the store's sandbox (no file, URL or extension access): ${msg}`);
  }
  if (/read-only mode|read only/i.test(msg)) return new SqlToolError('refused', `Refused: the SQL tool is read-only (${msg}). ${ALLOWED_STATEMENTS}`);
  return new SqlToolError('invalid', `Query failed: ${msg}`);
}

export const MAX_ROWS_CAP = 10_000;
const MAX_TIMEOUT_MS = 600_000;
/** Default byte budget of one result (estimated JSON bytes), and the most a caller may ask for. */
export const DEFAULT_MAX_RESULT_BYTES = 4_000_000;
export const MAX_RESULT_BYTES_CAP = 64_000_000;

/**
 * Runs one read-only query on a fresh connection of `instance` and returns at most maxRows rows of
 * at most maxBytes (estimated) bytes. The timeout covers the whole call, reading and converting
 * the rows included: past it the connection is interrupted. Rows are streamed chunk by chunk and
 * measured before they are converted, so an oversized result is cut, never built.
 */
export async function runReadOnlyQuery(instance: DuckDBInstance, sql: string, opts: QueryOptions = {}): Promise<QueryResult> {
  if (typeof sql !== 'string') throw new SqlToolError('invalid', 'sql must be a string');
  const maxRows = Math.max(1, Math.min(MAX_ROWS_CAP, Math.floor(opts.maxRows ?? 200)));
  const maxBytes = Math.max(1, Math.min(MAX_RESULT_BYTES_CAP, Math.floor(opts.maxBytes ?? DEFAULT_MAX_RESULT_BYTES)));
  const timeoutMs = Math.max(1, Math.min(MAX_TIMEOUT_MS, Math.floor(opts.timeoutMs ?? 10_000)));
  const deadline = Date.now() + timeoutMs;
  const conn = await instance.connect();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.interrupt();
  }, timeoutMs);
  // An interrupt that lands between engine calls is a no-op, and the timer cannot fire during
  // synchronous conversion: so the deadline is also checked after each await and each row.
  const live = () => {
    if (timedOut || Date.now() > deadline) {
      timedOut = true;
      throw new SqlToolError('timeout', `Query interrupted: it ran longer than the ${timeoutMs} ms timeout (reading the rows included). Narrow it (WHERE, LIMIT, fewer joins) or raise timeoutMs.`);
    }
  };
  try {
    await conn.run('BEGIN TRANSACTION READ ONLY');
    const prepared = await prepareReadOnly(conn, sql);
    live();
    const result = await prepared.stream();
    let read;
    try {
      read = await readBounded(result, { maxRows, maxBytes }, live);
    } finally {
      // Destroyed only now, and explicitly: a prepared statement collected while its streaming
      // result is read ends that result early (seen as DESCRIBE returning no rows under load).
      prepared.destroySync();
    }
    const cut = read.cutBy === 'maxRows'
      ? { limit: 'maxRows' as const, value: maxRows, message: `more than ${maxRows} rows (maxRows); only the first ${maxRows} are returned` }
      : read.cutBy === 'maxBytes'
        ? { limit: 'maxBytes' as const, value: maxBytes, message: `the result passed the ${maxBytes}-byte budget (maxBytes) after ${read.rows.length} rows; only those are returned. Select fewer or narrower columns (vec[1:8], left(text, 200), len(list)) or aggregate` }
        : null;
    return { columns: read.columns, rows: read.rows, truncated: cut !== null, cut, rowCount: read.rows.length, bytes: read.bytes };
  } catch (e) {
    if (timedOut) live();
    if (e instanceof SqlToolError) throw e;
    throw engineError(e);
  } finally {
    clearTimeout(timer);
    if (timedOut) conn.interrupt(); // stop whatever DuckDB is still computing for this connection
    try {
      await conn.run('ROLLBACK');
    } catch {
      /* no transaction left to end */
    }
    conn.closeSync();
  }
}
