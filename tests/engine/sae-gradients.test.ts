// The training graph's hand-derived backward against central finite differences of the loss
// sum((acts W_dec + b_dec - y)^2) / N, computed in float64 here. With zero Adam moments one step
// returns m' = (1 - beta1) g, which reads the graph's gradient back out.
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../engine/rng.ts';
import { ADAM, buildTrainStepGraph, paramDims, PARAMS, type ParamName, type TrainShape } from '../../engine/sae/train-graph.ts';

type Params = Record<ParamName, Float64Array>;

function loss(s: TrainShape, p: Params, x: Float64Array, y: Float64Array, N: number): number {
  let total = 0;
  for (let n = 0; n < N; n++) {
    const xc = Array.from({ length: s.dIn }, (_, i) => x[n * s.dIn + i] - (s.applyBDecToInput ? p.b_dec[i] : 0));
    const pre = Array.from({ length: s.dSae }, (_, j) => xc.reduce((a, v, i) => a + v * p.W_enc[i * s.dSae + j], p.b_enc[j]));
    const top = new Set([...pre.keys()].sort((a, b) => pre[b] - pre[a]).slice(0, s.k));
    const acts = pre.map((v, j) => (top.has(j) ? Math.max(0, v) : 0));
    for (let o = 0; o < s.dOut; o++) {
      const out = acts.reduce((a, v, j) => a + v * p.W_dec[j * s.dOut + o], p.b_dec[o]);
      total += (out - y[n * s.dOut + o]) ** 2;
    }
  }
  return total / N;
}

async function graphGradients(s: TrainShape, p: Params, x: Float64Array, y: Float64Array, N: number): Promise<Record<ParamName, Float32Array>> {
  const session = await ort.InferenceSession.create(buildTrainStepGraph(s), { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  const dims = paramDims(s);
  const t = (d: ArrayLike<number>, shape: number[]) => new ort.Tensor('float32', Float32Array.from(d), shape);
  const feeds: Record<string, ort.Tensor> = {
    x: t(x, [N, s.dIn]), y: t(y, [N, s.dOut]), lr: t([0], [1]), gscale: t([2 / N], [1]),
  };
  for (const n of PARAMS) {
    feeds[n] = t(p[n], dims[n]);
    feeds[`m_${n}`] = t(new Float32Array(p[n].length), dims[n]);
    feeds[`v_${n}`] = t(new Float32Array(p[n].length), dims[n]);
  }
  const out = await session.run(feeds);
  await session.release();
  return Object.fromEntries(PARAMS.map((n) => [n, (out[`new_m_${n}`].data as Float32Array).map((v) => v / (1 - ADAM.beta1))])) as Record<ParamName, Float32Array>;
}

describe('SAE training graph gradients', () => {
  for (const applyBDecToInput of [true, false]) {
    it(`match central finite differences (${applyBDecToInput ? 'SAE, b_dec subtracted from the input' : 'transcoder'})`, async () => {
      const s: TrainShape = { dIn: 5, dOut: applyBDecToInput ? 5 : 4, dSae: 8, k: 3, applyBDecToInput };
      const rng = new Rng(applyBDecToInput ? 1 : 2);
      const N = 6;
      const dims = paramDims(s);
      const p = Object.fromEntries(PARAMS.map((n) => [n, Float64Array.from({ length: dims[n].reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.5)])) as Params;
      // Round to float32 so the graph and the float64 reference see the same numbers.
      for (const n of PARAMS) p[n] = Float64Array.from(Float32Array.from(p[n]));
      const x = Float64Array.from(Float32Array.from({ length: N * s.dIn }, () => rng.normal()));
      const y = applyBDecToInput ? x : Float64Array.from(Float32Array.from({ length: N * s.dOut }, () => rng.normal()));
      const g = await graphGradients(s, p, x, y, N);
      const eps = 1e-4;
      for (const n of PARAMS) {
        let err = 0;
        let norm = 0;
        for (let i = 0; i < p[n].length; i++) {
          const keep = p[n][i];
          p[n][i] = keep + eps;
          const up = loss(s, p, x, y, N);
          p[n][i] = keep - eps;
          const down = loss(s, p, x, y, N);
          p[n][i] = keep;
          const fd = (up - down) / (2 * eps);
          err = Math.max(err, Math.abs(fd - g[n][i]));
          norm = Math.max(norm, Math.abs(fd));
        }
        expect(norm, n).toBeGreaterThan(0);
        expect(err / norm, n).toBeLessThan(2e-3);
      }
    });
  }
});
