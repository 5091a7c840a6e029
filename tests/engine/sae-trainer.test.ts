// The TopK trainer on a synthetic superposition set: 96 sparse features in known random directions
// of a 32-dim space (3x more features than dimensions, ~3 active per row). A working trainer must
// recover the directions as decoder rows; this is the algorithm's own test, independent of models.
import { describe, expect, it } from 'vitest';
import { Rng } from '../../engine/rng.ts';
import type { SparseDictionary } from '../../engine/sae/dictionary.ts';
import { measureReconstruction, trainTopK } from '../../engine/sae/trainer.ts';

function superposition(seed: number, dIn: number, F: number, N: number, perRow: number) {
  const rng = new Rng(seed);
  const feats = new Float32Array(F * dIn);
  for (let f = 0; f < F; f++) {
    let n = 0;
    for (let j = 0; j < dIn; j++) n += (feats[f * dIn + j] = rng.normal()) ** 2;
    for (let j = 0; j < dIn; j++) feats[f * dIn + j] /= Math.sqrt(n);
  }
  const x = new Float32Array(N * dIn);
  for (let r = 0; r < N; r++) {
    for (let f = 0; f < F; f++) {
      if (rng.next() >= perRow / F) continue;
      const a = 1 + rng.next();
      for (let j = 0; j < dIn; j++) x[r * dIn + j] += a * feats[f * dIn + j];
    }
  }
  return { feats, x };
}

/** For each planted feature, the best cosine with any decoder row (rows are unit norm). */
function bestCosines(feats: Float32Array, wDec: Float32Array, dIn: number): number[] {
  const F = feats.length / dIn;
  const S = wDec.length / dIn;
  return Array.from({ length: F }, (_, f) => {
    let best = -1;
    for (let i = 0; i < S; i++) {
      let c = 0;
      for (let j = 0; j < dIn; j++) c += feats[f * dIn + j] * wDec[i * dIn + j];
      best = Math.max(best, c);
    }
    return best;
  });
}

describe('TopK SAE trainer (onnxruntime forward, backward and Adam)', () => {
  it('recovers sparse features planted in superposition as decoder rows', async () => {
    const dIn = 32;
    const { feats, x } = superposition(1, dIn, 96, 8192, 3);
    const progress: number[] = [];
    const p = await trainTopK(x, dIn, null, dIn, { dSae: 192, k: 6, steps: 2000, threads: 1, seed: 0, onProgress: (q) => progress.push(q.mse) });
    const cos = bestCosines(feats, p.wDec, dIn);
    expect(cos.filter((c) => c >= 0.9).length).toBe(96);
    // Training lowered the error, and every decoder row stays unit norm.
    expect(progress.at(-1)!).toBeLessThan(progress[0] / 2);
    for (let i = 0; i < 192; i++) expect(Math.hypot(...p.wDec.subarray(i * dIn, (i + 1) * dIn))).toBeCloseTo(1, 4);
    const dict: SparseDictionary = { architecture: 'topk', dIn, dSae: 192, dOut: dIn, k: 6, hook: 'h', modelName: 'synthetic', applyBDecToInput: true, ...p };
    const m = await measureReconstruction(dict, x, null, 1);
    expect(m.explainedVariance).toBeGreaterThan(0.85);
    expect(m.l0).toBeLessThanOrEqual(6);
    expect(m.deadLatents).toBeLessThan(192 / 4);
  });

  it('trains a transcoder: a sparse map from one space to another', async () => {
    // y = A x through 48 sparse features: x carries feature f along u_f, y along w_f.
    const dIn = 16;
    const dOut = 12;
    const rng = new Rng(5);
    const F = 48;
    const u = Float32Array.from({ length: F * dIn }, () => rng.normal() / 4);
    const w = Float32Array.from({ length: F * dOut }, () => rng.normal() / 3.5);
    const N = 4096;
    const x = new Float32Array(N * dIn);
    const y = new Float32Array(N * dOut);
    for (let r = 0; r < N; r++) {
      for (let f = 0; f < F; f++) {
        if (rng.next() >= 2 / F) continue;
        for (let j = 0; j < dIn; j++) x[r * dIn + j] += u[f * dIn + j];
        for (let j = 0; j < dOut; j++) y[r * dOut + j] += w[f * dOut + j];
      }
    }
    const p = await trainTopK(x, dIn, y, dOut, { dSae: 96, k: 8, steps: 1500, lr: 3e-3, threads: 1 });
    const dict: SparseDictionary = { architecture: 'topk', dIn, dSae: 96, dOut, k: 8, hook: 'a', hookOut: 'b', modelName: 'synthetic', applyBDecToInput: false, ...p };
    const m = await measureReconstruction(dict, x, y, 1);
    expect(m.explainedVariance).toBeGreaterThan(0.75);
  });

  it('stops when cancelled and refuses impossible settings', async () => {
    const x = new Float32Array(64 * 8).map((_, i) => Math.sin(i));
    const ac = new AbortController();
    ac.abort();
    await expect(trainTopK(x, 8, null, 8, { dSae: 16, k: 2, signal: ac.signal })).rejects.toThrow(/training cancelled at step 0/);
    await expect(trainTopK(x, 8, null, 8, { dSae: 16, k: 17 })).rejects.toThrow(/k = 17 must be in 1..dSae \(16\)/);
    await expect(trainTopK(x.subarray(0, 13), 8, null, 8, { dSae: 16, k: 2 })).rejects.toThrow(/not a whole number of rows of 8/);
  });
});
