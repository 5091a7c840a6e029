// Reading a SQL result into JSON-safe rows within a row count, a byte budget and a deadline.
//
// The result is streamed one DuckDB chunk (up to 2048 rows) at a time, and each row's size is
// estimated from the vectors before anything is converted to JavaScript: a string's length sits in
// its 16-byte header and a list's length in its entry, so a 50-million-element list or a thousand
// one-megabyte strings are measured, found over budget and never copied into the JS heap (which
// is what used to take tens of seconds and gigabytes while the whole server waited).
import {
  DuckDBArrayVector,
  DuckDBBlobVector,
  DuckDBListVector,
  DuckDBMapVector,
  DuckDBStructVector,
  DuckDBVarCharVector,
  type DuckDBDataChunk,
  type DuckDBResult,
  type DuckDBVector,
} from '@duckdb/node-api';
import type { Json } from './types.ts';
import { jsonSafe, typeName } from './values.ts';

/** Bytes counted for a value of fixed width (numbers, dates...): about its JSON text. */
const FIXED_BYTES = 16;

/** Private fields of the vector classes that hold lengths without decoding values. */
type WithView = { dataView: DataView };
type WithArrayChild = { childData: DuckDBVector };
type WithList = { listVector: DuckDBListVector };
type WithValidity = { validity?: { itemValid?: (i: number) => boolean } };

/** Byte length of string_t `i` (DuckDB's 16-byte string header starts with the length). */
function stringBytes(v: DuckDBVector, i: number): number {
  const view = (v as unknown as WithView).dataView;
  return view instanceof DataView ? view.getUint32(i * 16, true) : String(v.getItem(i) ?? '').length;
}

/**
 * Estimated bytes of value `i` of `v`, counting at most up to `cap` (the caller only needs to know
 * whether it fits): lists are summed element by element only while under the cap.
 */
export function valueBytes(v: DuckDBVector, i: number, cap: number): number {
  // A NULL's slot holds garbage (a string header's length included): check validity first.
  const validity = (v as unknown as WithValidity).validity;
  if (validity && typeof validity.itemValid === 'function' && !validity.itemValid(i)) return 4;
  if (v instanceof DuckDBVarCharVector || v instanceof DuckDBBlobVector) return 2 + stringBytes(v, i);
  if (v instanceof DuckDBListVector) return rangeBytes(v.childVector, v.getEntryOffset(i), v.getEntryLength(i), cap);
  if (v instanceof DuckDBMapVector) {
    const list = (v as unknown as WithList).listVector;
    return rangeBytes(list.childVector, list.getEntryOffset(i), list.getEntryLength(i), cap);
  }
  if (v instanceof DuckDBArrayVector) {
    const length = v.type.length;
    return rangeBytes((v as unknown as WithArrayChild).childData, i * length, length, cap);
  }
  if (v instanceof DuckDBStructVector) {
    let n = 2;
    for (let e = 0; e < v.type.entryCount && n <= cap; e++) n += 4 + v.type.entryNames[e].length + valueBytes(v.entryVectorAt(e), i, cap - n);
    return n;
  }
  return FIXED_BYTES;
}

function isFixedWidth(v: DuckDBVector): boolean {
  return !(v instanceof DuckDBVarCharVector || v instanceof DuckDBBlobVector || v instanceof DuckDBListVector ||
    v instanceof DuckDBMapVector || v instanceof DuckDBArrayVector || v instanceof DuckDBStructVector);
}

function rangeBytes(child: DuckDBVector, offset: number, length: number, cap: number): number {
  if (isFixedWidth(child)) return 2 + length * FIXED_BYTES;
  let n = 2;
  for (let k = 0; k < length && n <= cap; k++) n += 1 + valueBytes(child, offset + k, cap - n);
  return n;
}

export type CutBy = 'maxRows' | 'maxBytes';

export interface BoundedRows {
  columns: { name: string; type: string }[];
  rows: Json[][];
  /** Estimated bytes of the rows returned. */
  bytes: number;
  /** Which limit cut the result, if one did. */
  cutBy: CutBy | null;
}

/**
 * Reads `result` chunk by chunk into at most `maxRows` rows of at most `maxBytes` estimated bytes.
 * `live()` is called before each chunk and each row so a deadline also covers conversion.
 */
export async function readBounded(result: DuckDBResult, limits: { maxRows: number; maxBytes: number }, live: () => void): Promise<BoundedRows> {
  const types = result.columnTypes();
  const columns = result.columnNames().map((name, i) => ({ name, type: typeName(types[i]) }));
  const jsonCols = types.flatMap((t, i) => (t.alias === 'JSON' ? [i] : []));
  const rows: Json[][] = [];
  let bytes = 0;
  for (;;) {
    live();
    const chunk: DuckDBDataChunk | null = await result.fetchChunk();
    live();
    if (!chunk || chunk.rowCount === 0) return { columns, rows, bytes, cutBy: null };
    const vectors = Array.from({ length: chunk.columnCount }, (_, c) => chunk.getColumnVector(c));
    for (let r = 0; r < chunk.rowCount; r++) {
      if (rows.length >= limits.maxRows) return { columns, rows, bytes, cutBy: 'maxRows' };
      let size = 2;
      for (const v of vectors) {
        size += 1 + valueBytes(v, r, limits.maxBytes - bytes - size + 1);
        if (bytes + size > limits.maxBytes) return { columns, rows, bytes, cutBy: 'maxBytes' };
      }
      const row = chunk.convertRowValues(r, jsonSafe) as Json[];
      for (const c of jsonCols) {
        if (typeof row[c] !== 'string') continue;
        try {
          row[c] = JSON.parse(row[c] as string) as Json;
        } catch {
          /* leave malformed JSON as text */
        }
      }
      rows.push(row);
      bytes += size;
      live();
    }
  }
}
