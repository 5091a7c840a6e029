// safetensors files read header-first and tensor-by-tensor (a 20B checkpoint never fits in memory
// whole), and written tensor-by-tensor from producers so writing is bounded by the largest tensor.
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';

export type DType = 'BF16' | 'F16' | 'F32' | 'U8' | 'I32' | 'I64' | 'F64';

export const DTYPE_SIZE: Readonly<Record<DType, number>> = { BF16: 2, F16: 2, F32: 4, U8: 1, I32: 4, I64: 8, F64: 8 };

const DTYPES = Object.keys(DTYPE_SIZE) as DType[];

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  file: string;
  /** Absolute byte position of the tensor's data in `file`. */
  offset: number;
  byteLength: number;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

// The reference implementation refuses headers above 100 MB; a bigger one means a corrupt length.
const MAX_HEADER = 100_000_000;

/** Reads and validates the JSON header of one .safetensors file (not the data). */
export function readSafetensorsHeader(file: string): { tensors: TensorInfo[]; metadata: Record<string, string> } {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new SafetensorsError(`${file}: file too short (${size} bytes) to be a safetensors file: it needs an 8-byte header length first`);
    const head = readAt(fd, 0, 8);
    const headerLen = Number(new DataView(head.buffer).getBigUint64(0, true));
    if (8 + headerLen > size || headerLen > MAX_HEADER) {
      throw new SafetensorsError(`${file}: header length ${headerLen} runs beyond the file (${size} bytes); the file is truncated or not a safetensors file`);
    }
    let header: unknown;
    try {
      header = JSON.parse(Buffer.from(readAt(fd, 8, headerLen)).toString('utf8'));
    } catch (e) {
      throw new SafetensorsError(`${file}: header is not valid JSON (${(e as Error).message})`);
    }
    if (!isObject(header)) throw new SafetensorsError(`${file}: header must be a JSON object of tensor entries`);
    return parseHeader(file, header, 8 + headerLen, size);
  } finally {
    closeSync(fd);
  }
}

function parseHeader(file: string, header: Record<string, unknown>, dataStart: number, size: number) {
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  const dataLen = size - dataStart;
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isObject(entry)) throw new SafetensorsError(`${file}: __metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw new SafetensorsError(`${file}: __metadata__.${k} must be a string, found ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `${file}: tensor ${name}`;
    if (!isObject(entry)) throw new SafetensorsError(`${where}: entry must be an object with dtype, shape, data_offsets`);
    const { dtype, shape, data_offsets: offs } = entry;
    if (typeof dtype !== 'string' || !DTYPES.includes(dtype as DType)) {
      throw new SafetensorsError(`${where}: unknown dtype ${JSON.stringify(dtype)}; supported: ${DTYPES.join(', ')}`);
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      throw new SafetensorsError(`${where}: shape must be an array of non-negative integers, found ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isCount) || offs[1] < offs[0]) {
      throw new SafetensorsError(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end, found ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    const expected = numel(shape) * DTYPE_SIZE[dtype as DType];
    if (end - begin !== expected) {
      throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} [${shape.join(', ')}] needs ${expected}`);
    }
    if (end > dataLen) {
      throw new SafetensorsError(`${where}: data ends at byte ${end} of the data section but the file holds only ${dataLen} bytes of data; the file is truncated`);
    }
    tensors.push({ name, dtype: dtype as DType, shape: shape.slice(), file, offset: dataStart + begin, byteLength: end - begin });
  }
  const byOffset = tensors.slice().sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1];
    if (byOffset[i].offset < prev.offset + prev.byteLength) {
      throw new SafetensorsError(`${file}: tensors ${prev.name} and ${byOffset[i].name} have overlapping data_offsets`);
    }
  }
  return { tensors, metadata };
}

/**
 * Reads a byte range of one tensor straight from disk; `into`: into this buffer (exactly byteLength
 * long) instead of a new one, since fresh pages are costly on some VMs.
 */
export function readTensorBytes(info: TensorInfo, byteOffset = 0, byteLength = info.byteLength - byteOffset, into?: Uint8Array): Uint8Array {
  if (byteOffset < 0 || byteLength < 0 || byteOffset + byteLength > info.byteLength) {
    throw new SafetensorsError(`${info.file}: tensor ${info.name}: byte range [${byteOffset}, ${byteOffset + byteLength}) is outside its ${info.byteLength} bytes`);
  }
  if (into && into.length !== byteLength) throw new SafetensorsError(`readTensorBytes: buffer of ${into.length} bytes for a ${byteLength}-byte read`);
  const fd = openSync(info.file, 'r');
  try {
    return readAt(fd, info.offset + byteOffset, byteLength, into);
  } finally {
    closeSync(fd);
  }
}

/** Rows of a 2-D tensor (each `rowBytes` long) into one buffer, with the file opened once. */
export function readTensorRows(info: TensorInfo, rows: readonly number[], rowBytes: number): Uint8Array {
  const out = new Uint8Array(rows.length * rowBytes);
  const fd = openSync(info.file, 'r');
  try {
    rows.forEach((r, i) => {
      if ((r + 1) * rowBytes > info.byteLength) throw new SafetensorsError(`${info.file}: tensor ${info.name}: row ${r} is outside its ${info.byteLength} bytes`);
      out.set(readAt(fd, info.offset + r * rowBytes, rowBytes), i * rowBytes);
    });
  } finally {
    closeSync(fd);
  }
  return out;
}

function readAt(fd: number, position: number, length: number, into?: Uint8Array): Uint8Array {
  const out = into ?? new Uint8Array(length);
  let done = 0;
  while (done < length) {
    // readSync caps one call at 2 GiB, so large tensors come in several reads.
    const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), position + done);
    if (n === 0) throw new SafetensorsError(`unexpected end of file at byte ${position + done} (wanted ${length} bytes from ${position})`);
    done += n;
  }
  return out;
}

let f16Table: Float32Array | undefined;

/** All 65536 half-precision values, built once: exact and faster than decoding bit fields per value. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  f16Table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    f16Table[h] =
      exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return f16Table;
}

/** Decodes float bytes (a whole tensor or a slice of it) to float32; exact for BF16, F16 and F32. */
export function toFloat32(info: TensorInfo, bytes: Uint8Array): Float32Array {
  const size = DTYPE_SIZE[info.dtype];
  if (bytes.byteLength % size !== 0) throw new SafetensorsError(`tensor ${info.name}: ${bytes.byteLength} bytes is not a whole number of ${info.dtype} values`);
  // Typed-array views need aligned offsets; copy the rare unaligned slice. Hosts are little-endian like the file.
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const n = b.byteLength / size;
  switch (info.dtype) {
    case 'BF16': {
      const src = new Uint16Array(b.buffer, b.byteOffset, n);
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      return new Float32Array(bits.buffer);
    }
    case 'F16': {
      const src = new Uint16Array(b.buffer, b.byteOffset, n);
      const table = halfTable();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]];
      return out;
    }
    case 'F32':
      return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    default:
      throw new SafetensorsError(`tensor ${info.name} in ${info.file} has dtype ${info.dtype}; only BF16, F16 and F32 decode to float32`);
  }
}

/** float32 -> BF16 bytes, round-to-nearest-even (as torch's .to(bfloat16)); NaN stays a quiet NaN. */
export function f32ToBf16Bytes(x: Float32Array): Uint8Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const b = bits[i];
    out[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return new Uint8Array(out.buffer);
}

export function f32ToBytes(x: Float32Array): Uint8Array {
  return new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
}

/** A tensor whose bytes are produced only when the writer reaches it. */
export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: number[];
  byteLength: number;
  write: () => Uint8Array;
}

/** Writes a safetensors file: header padded with spaces to 8 bytes, tensors in name order. */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  const sorted = tensors.slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const seen = new Set<string>();
  let pos = 0;
  for (const t of sorted) {
    if (seen.has(t.name)) throw new SafetensorsError(`${path}: tensor ${t.name} is given twice`);
    const need = numel(t.shape) * DTYPE_SIZE[t.dtype];
    if (need !== t.byteLength) throw new SafetensorsError(`${path}: tensor ${t.name}: byteLength ${t.byteLength} but ${t.dtype} [${t.shape.join(', ')}] needs ${need}`);
    seen.add(t.name);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + t.byteLength] };
    pos += t.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.from(' '.repeat(pad))]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fd = openSync(path, 'w');
  try {
    writeAll(fd, len);
    writeAll(fd, json);
    for (const t of sorted) {
      const bytes = t.write();
      if (bytes.byteLength !== t.byteLength) throw new SafetensorsError(`${path}: tensor ${t.name} produced ${bytes.byteLength} bytes, expected ${t.byteLength}`);
      writeAll(fd, bytes);
    }
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, 1 << 30));
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isCount(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}
