// MXFP4 (OCP microscaling FP4): 32 values share one E8M0 scale byte, each value is a 4-bit E2M1 code.
// gpt-oss stores its expert weights this way; see shared/docs/gpt-oss.md.

export const FP4_VALUES: readonly number[] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

export const MXFP4_BLOCK = 32;

// byte -> [value of low nibble (even element), value of high nibble (odd element)]
const PAIRS = new Float32Array(512);
for (let b = 0; b < 256; b++) {
  PAIRS[2 * b] = FP4_VALUES[b & 0x0f];
  PAIRS[2 * b + 1] = FP4_VALUES[b >> 4];
}

// scale byte s -> 2^(s - 127); exact in float64, and the products below are exact in float32
// except where they underflow, which the reference's float32 decode does identically.
const POW2 = new Float64Array(256);
for (let s = 0; s < 256; s++) POW2[s] = 2 ** (s - 127);

function checkShape(rows: number, cols: number, what: string): void {
  if (!Number.isSafeInteger(rows) || rows < 0 || !Number.isSafeInteger(cols) || cols < 0 || cols % MXFP4_BLOCK !== 0) {
    throw new Error(`${what}: MXFP4 needs whole rows of 32-value blocks, got rows=${rows}, cols=${cols} (cols must be a multiple of 32)`);
  }
}

/** blocks [rows, cols/32, 16] + scales [rows, cols/32] -> float32 [rows, cols] row-major. */
export function dequantizeMxfp4(blocks: Uint8Array, scales: Uint8Array, rows: number, cols: number, out?: Float32Array): Float32Array {
  checkShape(rows, cols, 'dequantizeMxfp4');
  const groups = (rows * cols) / MXFP4_BLOCK;
  if (blocks.length !== groups * 16 || scales.length !== groups) {
    throw new Error(`dequantizeMxfp4: [${rows}, ${cols}] needs ${groups * 16} block bytes and ${groups} scales, got ${blocks.length} and ${scales.length}`);
  }
  const dst = out ?? new Float32Array(rows * cols);
  if (dst.length !== rows * cols) throw new Error(`dequantizeMxfp4: out has ${dst.length} values, [${rows}, ${cols}] needs ${rows * cols}`);
  // Groups are contiguous across rows, so one flat loop over groups covers every row.
  for (let g = 0, bi = 0, o = 0; g < groups; g++) {
    const scale = POW2[scales[g]];
    for (let j = 0; j < 16; j++, bi++, o += 2) {
      const p = blocks[bi] << 1;
      dst[o] = PAIRS[p] * scale;
      dst[o + 1] = PAIRS[p + 1] * scale;
    }
  }
  return dst;
}

/** |x| (already divided by the block scale, so 0 <= x <= 6) -> nearest E2M1 magnitude code, ties to the even code. */
function magnitudeCode(x: number): number {
  if (x <= 0.25) return 0;
  if (x < 0.75) return 1;
  if (x <= 1.25) return 2;
  if (x < 1.75) return 3;
  if (x <= 2.5) return 4;
  if (x < 3.5) return 5;
  if (x <= 5) return 6;
  return 7;
}

/**
 * float32 [rows, cols] -> MXFP4. Per block the scale is the smallest power of two with max|x| <= 6 * 2^e
 * (OpenAI's downcast rounds the scale up the same way), so any block that MXFP4 can represent exactly
 * round-trips exactly. An all-zero block gets scale byte 0, as theirs does.
 */
export function quantizeMxfp4(w: Float32Array, rows: number, cols: number): { blocks: Uint8Array; scales: Uint8Array } {
  checkShape(rows, cols, 'quantizeMxfp4');
  if (w.length !== rows * cols) throw new Error(`quantizeMxfp4: got ${w.length} values for [${rows}, ${cols}]`);
  const groups = (rows * cols) / MXFP4_BLOCK;
  const blocks = new Uint8Array(groups * 16);
  const scales = new Uint8Array(groups);
  for (let g = 0; g < groups; g++) {
    const base = g * MXFP4_BLOCK;
    let max = 0;
    for (let i = 0; i < MXFP4_BLOCK; i++) {
      const a = Math.abs(w[base + i]);
      if (a > max || a !== a) max = a; // a NaN sticks, for the check below
    }
    if (!Number.isFinite(max)) throw new Error(`quantizeMxfp4: non-finite value in block ${g} (row ${Math.floor(base / cols)})`);
    const s = scaleByte(max);
    scales[g] = s;
    const inv = 2 ** (127 - s);
    for (let j = 0; j < 16; j++) {
      const a = w[base + 2 * j];
      const b = w[base + 2 * j + 1];
      blocks[g * 16 + j] = code(a, inv) | (code(b, inv) << 4);
    }
  }
  return { blocks, scales };
}

function code(v: number, inv: number): number {
  // The sign bit is kept even when the magnitude rounds to zero (-0), like a float cast.
  const neg = v < 0 || Object.is(v, -0);
  return magnitudeCode(Math.min(Math.abs(v) * inv, 6)) | (neg ? 8 : 0);
}

/** Smallest s in [0, 254] with max <= 6 * 2^(s-127). */
function scaleByte(max: number): number {
  if (max === 0) return 0;
  let e = Math.ceil(Math.log2(max / 6));
  // log2 can land one off near powers of two; settle it exactly.
  while (max > 6 * 2 ** e) e++;
  while (max <= 6 * 2 ** (e - 1)) e--;
  return Math.max(0, Math.min(254, e + 127));
}

// Doubled FP4 values are the integers 0, 1, 2, 3, 4, 6, 8, 12 (and negatives); each splits into two
// 4-bit integers a + b in [-8, 7] (a = trunc(v/2), b = v - a). Byte -> two such nibble bytes.
const SPLIT_A = new Uint8Array(256);
const SPLIT_B = new Uint8Array(256);
for (let byte = 0; byte < 256; byte++) {
  const lo = FP4_VALUES[byte & 0x0f] * 2;
  const hi = FP4_VALUES[byte >> 4] * 2;
  const aLo = Math.trunc(lo / 2);
  const aHi = Math.trunc(hi / 2);
  // Stored with onnxruntime's default 4-bit zero point 8, low nibble = even element (as MXFP4).
  SPLIT_A[byte] = (aLo + 8) | ((aHi + 8) << 4);
  SPLIT_B[byte] = (lo - aLo + 8) | ((hi - aHi + 8) << 4);
}

/**
 * MXFP4 as onnxruntime's 4-bit block quantisation (MatMulNBits, block 64), exactly: every 32-value
 * block becomes one 64-value block holding the two integer halves a and b of its doubled values,
 * with scale 2^(s - 128). Fed x with each 32-column chunk repeated twice, the matmul sums
 * x_i (a_i + b_i) 2^(s-128) = x_i W_i: every dequantised weight is exact in float32, only the
 * float32 accumulation order differs from a Gemm on the float weights.
 * Returns q [rows, cols/32, 32] bytes and scales [rows * cols/32].
 */
export function mxfp4ToNibblePairs(blocks: Uint8Array, scales: Uint8Array, rows: number, cols: number): { q: Uint8Array; scales: Float32Array } {
  checkShape(rows, cols, 'mxfp4ToNibblePairs');
  const groups = (rows * cols) / MXFP4_BLOCK;
  if (blocks.length !== groups * 16 || scales.length !== groups) {
    throw new Error(`mxfp4ToNibblePairs: [${rows}, ${cols}] needs ${groups * 16} block bytes and ${groups} scales, got ${blocks.length} and ${scales.length}`);
  }
  const q = new Uint8Array(groups * 32);
  const s = new Float32Array(groups);
  for (let g = 0, bi = 0, o = 0; g < groups; g++, o += 16) {
    s[g] = POW2[scales[g]] / 2;
    for (let j = 0; j < 16; j++, bi++, o++) {
      const byte = blocks[bi];
      q[o] = SPLIT_A[byte];
      q[o + 16] = SPLIT_B[byte];
    }
  }
  return { q, scales: s };
}
