// The realistic style's rotated residual basis: a seeded random orthogonal R applied to every
// residual reader and writer, so planted directions are dense instead of axis-aligned. With uniform
// RMSNorm gains, norm(R x) = R norm(x), so the rotated model computes exactly what the unrotated one
// does (up to the BF16/MXFP4 rounding of the stored values, which the build check runs on).
import type { Rng } from '../rng.ts';

/** A random orthogonal H x H matrix (row-major), by Gram-Schmidt on Gaussian rows (twice, for accuracy). */
export function randomOrthogonal(H: number, rng: Rng): Float64Array {
  const R = new Float64Array(H * H);
  for (let i = 0; i < H * H; i++) R[i] = rng.normal();
  for (let i = 0; i < H; i++) {
    const ri = i * H;
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < i; j++) {
        const rj = j * H;
        let dot = 0;
        for (let c = 0; c < H; c++) dot += R[ri + c] * R[rj + c];
        for (let c = 0; c < H; c++) R[ri + c] -= dot * R[rj + c];
      }
    }
    let n = 0;
    for (let c = 0; c < H; c++) n += R[ri + c] * R[ri + c];
    n = Math.sqrt(n);
    for (let c = 0; c < H; c++) R[ri + c] /= n;
  }
  return R;
}

/** Rotation x -> R x of the residual stream; RT holds R transposed (row c = column c of R). */
export class ResidualRotation {
  private readonly RT: Float64Array;
  constructor(readonly H: number, readonly R: Float64Array) {
    this.RT = new Float64Array(H * H);
    for (let i = 0; i < H; i++) for (let j = 0; j < H; j++) this.RT[j * H + i] = R[i * H + j];
  }

  /** v -> R v */
  vector(v: ArrayLike<number>): Float32Array {
    const { H, R } = this;
    const out = new Float32Array(H);
    for (let i = 0; i < H; i++) {
      let acc = 0;
      for (let c = 0; c < H; c++) acc += R[i * H + c] * v[c];
      out[i] = acc;
    }
    return out;
  }

  /** Rows that read the residual ([rows, H], e.g. q/k/v, router, gate_up, embedding, lm_head): W -> W R^T. Sparse-aware. */
  readers(W: Float32Array): Float32Array {
    const { H, RT } = this;
    const rows = W.length / H;
    const out = new Float32Array(W.length);
    const acc = new Float64Array(H);
    for (let r = 0; r < rows; r++) {
      acc.fill(0);
      let any = false;
      for (let c = 0; c < H; c++) {
        const w = W[r * H + c];
        if (w === 0) continue;
        any = true;
        for (let j = 0; j < H; j++) acc[j] += w * RT[c * H + j];
      }
      if (any) for (let j = 0; j < H; j++) out[r * H + j] = acc[j];
    }
    return out;
  }

  /** Columns that write the residual ([blocks, H, cols], e.g. o_proj, down_proj): W -> R W per block. Sparse-aware. */
  writers(W: Float32Array, cols: number): Float32Array {
    const { H, RT } = this;
    const blocks = W.length / (H * cols);
    const out = new Float32Array(W.length);
    const acc = new Float64Array(H);
    for (let b = 0; b < blocks; b++) {
      const base = b * H * cols;
      for (let col = 0; col < cols; col++) {
        acc.fill(0);
        let any = false;
        for (let r = 0; r < H; r++) {
          const w = W[base + r * cols + col];
          if (w === 0) continue;
          any = true;
          for (let j = 0; j < H; j++) acc[j] += w * RT[r * H + j];
        }
        if (any) for (let j = 0; j < H; j++) out[base + j * cols + col] = acc[j];
      }
    }
    return out;
  }
}
