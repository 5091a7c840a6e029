// What this machine and a forward cost, shared by the benchmarks: the analytic FLOPs of a gpt-oss
// forward, float32 weight bytes, onnxruntime's matmul rate in the engine's Gemm form, and memory
// copy bandwidth (the physical limits a phase is compared against).
import * as ort from 'onnxruntime-node';
import type { GptOssConfig } from '../engine/config.ts';
import { GraphBuilder, int } from '../engine/onnx/graph-builder.ts';
import { Rng } from '../engine/rng.ts';

// ---------------------------------------------------------------------------------------------
// Analytic FLOPs (2 per multiply-add) of one forward of 1 row of T tokens, as the engine executes
// it: scores and pattern@V over the full T x T (the causal/sliding mask is additive, so masked
// entries are computed too), k experts per token, unembedding of the last position only.
export interface FlopCount {
  attnProj: number;
  scores: number;
  patternV: number;
  oProj: number;
  router: number;
  experts: number;
  unembed: number;
  total: number;
}

export function forwardFlops(c: GptOssConfig, T: number): FlopCount {
  const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: d, numExperts: E, expertsPerToken: k, vocabSize: V } = c;
  const L = c.numLayers;
  const f = {
    attnProj: L * 2 * T * H * (nH * d + 2 * nKV * d),
    scores: L * 2 * nH * T * T * d,
    patternV: L * 2 * nH * T * T * d,
    oProj: L * 2 * T * (nH * d) * H,
    router: L * 2 * T * H * E,
    experts: L * T * k * (2 * H * (2 * I) + 2 * I * H),
    unembed: 2 * H * V,
    total: 0,
  };
  f.total = f.attnProj + f.scores + f.patternV + f.oProj + f.router + f.experts + f.unembed;
  return f;
}

/** Bytes of every weight dequantised to float32, as the engine caches them. */
export function weightBytes(c: GptOssConfig): number {
  const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: d, numExperts: E, vocabSize: V } = c;
  const attn = 2 * H + nH * d * H + nH * d + 2 * (nKV * d * H + nKV * d) + H * nH * d + H + nH + E * H + E;
  const experts = E * (2 * I * H + 2 * I + H * I + H);
  return 4 * (c.numLayers * (attn + experts) + H + V * H);
}

// ---------------------------------------------------------------------------------------------
// This machine's float32 matmul rate through onnxruntime-node, in the engine's form: y = x W^T + b
// as one Gemm with transB and W a graph input (as every engine weight is), same thread count.
export interface Probe {
  M: number;
  K: number;
  N: number;
  flops: number;
  run: () => Promise<unknown>;
  release: () => Promise<void>;
}

export async function matmulProbe(M: number, K: number, N: number, threads: number): Promise<Probe> {
  const g = new GraphBuilder('matmul_probe');
  const x = g.input('x', ['M', K]);
  const w = g.input('w', [N, K]);
  const b = g.input('b', [N]);
  g.output('y', g.op('Gemm', [x, w, b], { transB: int(1) }));
  const session = await ort.InferenceSession.create(g.build(), {
    executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
  });
  const rng = new Rng(7);
  const feeds = {
    x: new ort.Tensor('float32', rng.normals(M * K), [M, K]),
    w: new ort.Tensor('float32', rng.normals(N * K, 1 / Math.sqrt(K)), [N, K]),
    b: new ort.Tensor('float32', new Float32Array(N), [N]),
  };
  return { M, K, N, flops: 2 * M * K * N, run: () => session.run(feeds), release: () => session.release() };
}

/** Memory bandwidth in bytes/s: copies of a `mib` MiB buffer (TypedArray.set, a memcpy), counting bytes read + written; best of `runs`. */
export function copyBandwidth(mib = 512, runs = 3): number {
  const a = new Float64Array((mib * 2 ** 20) / 8).fill(1);
  const b = new Float64Array(a.length).fill(2);
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    b.set(a);
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return (2 * a.byteLength) / best;
}
