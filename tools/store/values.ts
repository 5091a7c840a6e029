// Conversions between DuckDB values and plain JSON-safe JS. Store records and SQL-tool rows both go
// through `jsonSafe`, so what a tool sees is exactly what the MCP server would serialise.
import {
  DuckDBDecimalValue,
  DuckDBListValue,
  DuckDBTimestampTZValue,
  JsonDuckDBValueConverter,
  type DuckDBListVector,
  type DuckDBResultReader,
  type DuckDBType,
  type DuckDBValueConverter,
} from '@duckdb/node-api';
import type { Json } from './types.ts';

function bigintToJson(v: bigint): number | string {
  // Keep integers exact: numbers while they are safe, decimal strings beyond 2^53.
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
}

export const jsonSafe: DuckDBValueConverter<Json> = (value, type, converter) => {
  if (value == null) return null;
  if (typeof value === 'bigint') return bigintToJson(value);
  if (value instanceof DuckDBDecimalValue) return value.toDouble();
  if (value instanceof DuckDBTimestampTZValue) {
    return value.isFinite ? new Date(Number(value.micros / 1000n)).toISOString() : value.toString();
  }
  return JsonDuckDBValueConverter(value, type, converter) as Json;
};

/** Column type name as SQL shows it (JSON columns are VARCHAR with alias JSON). */
export function typeName(t: DuckDBType): string {
  return t.alias ?? t.toString();
}

/**
 * JSON-safe rows of a reader, JSON columns parsed. Chunk vectors do not carry the JSON alias, so
 * JSON-ness is taken from the result's column types.
 */
export function readerRows(reader: DuckDBResultReader, maxRows = Infinity): { columns: { name: string; type: string }[]; rows: Json[][] } {
  const types = reader.columnTypes();
  const columns = reader.columnNames().map((name, i) => ({ name, type: typeName(types[i]) }));
  const rows = (reader.convertRows(jsonSafe) as Json[][]).slice(0, maxRows);
  const jsonCols = types.flatMap((t, i) => (t.alias === 'JSON' ? [i] : []));
  for (const row of rows) {
    for (const c of jsonCols) {
      if (typeof row[c] !== 'string') continue;
      try {
        row[c] = JSON.parse(row[c] as string) as Json;
      } catch {
        /* leave malformed JSON as text */
      }
    }
  }
  return { columns, rows };
}

/** Like readerRows, as objects keyed by column name (for store records, whose names are unique). */
export function readerObjects(reader: DuckDBResultReader): Record<string, Json>[] {
  const { columns, rows } = readerRows(reader);
  return rows.map((row) => Object.fromEntries(columns.map((c, i) => [c.name, row[i]])));
}

/**
 * A FLOAT[] value backed by the caller's Float32Array, without copying it into a number[].
 * The list vector only reads `items.length` and `items[i]` when flushing a data chunk, which a typed
 * array provides; building number[] copies first made bulk appends ~2x slower.
 */
export function floatList(v: Float32Array): DuckDBListValue {
  return new DuckDBListValue(v as unknown as readonly number[]);
}

/** Float32 copy of a vector input, refusing empty or non-numeric ones. */
export function toFloat32(v: Float32Array | readonly number[], what: string): Float32Array {
  if (!(v instanceof Float32Array) && !Array.isArray(v)) throw new TypeError(`${what}: vec must be a Float32Array or number[]`);
  if (v.length === 0) throw new RangeError(`${what}: vec is empty`);
  if (v instanceof Float32Array) return v;
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    if (typeof v[i] !== 'number') throw new TypeError(`${what}: vec[${i}] is not a number`);
    out[i] = v[i];
  }
  return out;
}

export function l2norm(v: Float32Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/**
 * Reads row `row` of a NOT NULL FLOAT[] vector straight from its flat child storage, skipping the
 * per-row DuckDBListValue that getItem() would build (reads of 100k vectors were 3x slower that way).
 */
export function readFloatList(vector: DuckDBListVector, row: number): Float32Array {
  const offset = vector.getEntryOffset(row);
  const length = vector.getEntryLength(row);
  const child = vector.childVector;
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = child.getItem(offset + i) as number;
  return out;
}

/** Serialises a JSON column input; undefined -> NULL. Throws a readable error for BigInt/cycles. */
export function jsonParam(value: unknown, what: string): string | null {
  if (value === undefined || value === null) return null;
  try {
    return JSON.stringify(value) ?? null;
  } catch (e) {
    throw new TypeError(`${what} is not JSON-serialisable: ${(e as Error).message}`);
  }
}
