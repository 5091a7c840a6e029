// Minimal, self-contained safetensors reader for the reference oracle.
// Deliberately independent of engine/: a bug shared by both would hide from the comparison tests.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array; // little-endian payload, exactly as stored
}

/** Parses one .safetensors file: u64 header length, JSON header, then the data section. */
export function readSafetensors(file: string): Map<string, RawTensor> {
  const buf = readFileSync(file);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const dataStart = 8 + headerLen;
  const out = new Map<string, RawTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = info.data_offsets;
    out.set(name, { dtype: info.dtype, shape: info.shape, bytes: buf.subarray(dataStart + a, dataStart + b) });
  }
  return out;
}

/** Reads model.safetensors, or every shard named by model.safetensors.index.json. */
export function readCheckpoint(dir: string): Map<string, RawTensor> {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return readSafetensors(single);
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as {
    weight_map: Record<string, string>;
  };
  const out = new Map<string, RawTensor>();
  for (const shard of new Set(Object.values(index.weight_map))) {
    for (const [k, v] of readSafetensors(join(dir, shard))) out.set(k, v);
  }
  return out;
}

/** Decodes BF16 / F32 to float32 (BF16 is exact: its 16 bits are the high half of a float32). */
export function toFloat32(t: RawTensor): Float32Array {
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  if (t.dtype === 'F32') {
    const out = new Float32Array(t.bytes.byteLength / 4);
    for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
    return out;
  }
  if (t.dtype === 'BF16') {
    const n = t.bytes.byteLength / 2;
    const bits = new Uint32Array(n);
    for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
    return new Float32Array(bits.buffer);
  }
  throw new Error(`reference reader: unsupported dtype ${t.dtype} for a float tensor`);
}

const FP4_TABLE = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

/**
 * MXFP4 -> float32. blocks U8 [..., rows, G, 16], scales U8 [..., rows, G]; output [..., rows, 32G].
 * Each byte holds two codes: low nibble = even element, high nibble = odd element; scale is 2^(s-127).
 */
export function dequantMxfp4(blocks: RawTensor, scales: RawTensor): Float32Array {
  if (blocks.dtype !== 'U8' || scales.dtype !== 'U8') throw new Error('MXFP4 tensors must be U8');
  const nGroups = scales.bytes.length; // one scale per 32-value block, over all leading dims
  if (blocks.bytes.length !== nGroups * 16) throw new Error('MXFP4 blocks/scales size mismatch');
  const out = new Float32Array(nGroups * 32);
  for (let g = 0; g < nGroups; g++) {
    const scale = Math.pow(2, scales.bytes[g] - 127);
    for (let j = 0; j < 16; j++) {
      const byte = blocks.bytes[16 * g + j];
      out[32 * g + 2 * j] = FP4_TABLE[byte & 0x0f] * scale;
      out[32 * g + 2 * j + 1] = FP4_TABLE[byte >> 4] * scale;
    }
  }
  return out;
}
