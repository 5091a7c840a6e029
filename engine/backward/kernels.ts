// The few dense kernels the reverse pass needs, on row-major float arrays with [out, in] weights as
// stored in the checkpoint. Gradients accumulate in float64.
type Vec = Float32Array | Float64Array;

/** g_in[0..nIn) += W^T g_out for W [nOut, nIn] (row o of W scaled by g_out[o]). */
export function addMatTVec(w: Float32Array, gOut: Vec, gOff: number, nOut: number, nIn: number, gIn: Float64Array, inOff: number): void {
  for (let o = 0; o < nOut; o++) {
    const g = gOut[gOff + o];
    if (g === 0) continue;
    const row = o * nIn;
    for (let i = 0; i < nIn; i++) gIn[inOff + i] += g * w[row + i];
  }
}

/**
 * RMSNorm backward over rows of n: y = x / r * w with r = sqrt(mean(x^2) + eps).
 * g_x = (w g_y) / r - x * sum(w g_y x) / (n r^3). Adds into gx (same layout as x).
 */
export function addRmsNormBackward(x: Float32Array, w: Float32Array, gy: Float64Array, gx: Float64Array, rows: number, n: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let ss = 0;
    let dot = 0;
    for (let i = 0; i < n; i++) {
      ss += x[o + i] * x[o + i];
      dot += w[i] * gy[o + i] * x[o + i];
    }
    const rr = Math.sqrt(ss / n + eps);
    const k = dot / (n * rr * rr * rr);
    for (let i = 0; i < n; i++) gx[o + i] += (w[i] * gy[o + i]) / rr - x[o + i] * k;
  }
}

/**
 * Half-split RoPE backward in place on g [B, T, n, d] with tables [T, d/2]: the transposed rotation
 * with the same tables (they carry the YaRN concentration, so this is not the inverse rotation).
 */
export function ropeBackward(g: Float64Array, B: number, T: number, n: number, d: number, cos: Float32Array, sin: Float32Array): void {
  const half = d / 2;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < n; h++) {
        const base = ((b * T + t) * n + h) * d;
        for (let i = 0; i < half; i++) {
          const c = cos[t * half + i];
          const s = sin[t * half + i];
          const g1 = g[base + i];
          const g2 = g[base + half + i];
          g[base + i] = g1 * c + g2 * s;
          g[base + half + i] = -g1 * s + g2 * c;
        }
      }
    }
  }
}
