// Training a TopK SAE or transcoder on rows of activations held in memory. Each step is one run of
// the graph in train-graph.ts (forward, backward and Adam in onnxruntime); this file only shuffles
// rows into batches, feeds the buffers back in, and measures the result.
import * as ort from 'onnxruntime-node';
import { Rng } from '../rng.ts';
import { DictionaryRunner, type SparseDictionary } from './dictionary.ts';
import { ADAM, buildTrainStepGraph, paramDims, PARAMS, type ParamName, type TrainShape } from './train-graph.ts';

export interface TrainOptions {
  dSae: number;
  k: number;
  /** Adam learning rate (default 1e-3). */
  lr?: number;
  /** Optimiser steps (default: 40 passes over the rows, at least 1000 steps). */
  steps?: number;
  /** Rows per step (default 256). */
  batchSize?: number;
  seed?: number;
  threads?: number;
  signal?: AbortSignal;
  onProgress?: (p: { step: number; steps: number; mse: number }) => void;
}

export interface ReconstructionMetrics {
  /** 1 - SSE / total variance of the target around its mean. */
  explainedVariance: number;
  /** Mean squared error per element. */
  mse: number;
  /** Mean number of active latents per token. */
  l0: number;
  /** Latents active on no row of the evaluated set. */
  deadLatents: number;
  rows: number;
}

export interface TrainedParams {
  wEnc: Float32Array;
  bEnc: Float32Array;
  wDec: Float32Array;
  bDec: Float32Array;
  steps: number;
  /** Mean squared error per element over the last 10% of steps (training batches). */
  finalTrainMse: number;
}

export class TrainError extends Error {
  override name = 'TrainError';
}

const f32 = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);

/** Unit-norm random decoder rows, the encoder their transpose, b_dec the target's mean. */
function initParams(s: TrainShape, y: Float32Array, rng: Rng): Record<ParamName, Float32Array> {
  const { dIn, dOut, dSae } = s;
  const wDec = new Float32Array(dSae * dOut);
  for (let i = 0; i < dSae; i++) {
    let n = 0;
    for (let j = 0; j < dOut; j++) n += (wDec[i * dOut + j] = rng.normal()) ** 2;
    n = Math.sqrt(n);
    for (let j = 0; j < dOut; j++) wDec[i * dOut + j] /= n;
  }
  // Transcoder: the encoder reads another space, so it starts random at the same scale.
  const wEnc = new Float32Array(dIn * dSae);
  for (let i = 0; i < dIn; i++) {
    for (let j = 0; j < dSae; j++) wEnc[i * dSae + j] = s.applyBDecToInput ? wDec[j * dOut + i] : rng.normal() / Math.sqrt(dIn);
  }
  const bDec = new Float32Array(dOut);
  const N = y.length / dOut;
  for (let r = 0; r < N; r++) for (let j = 0; j < dOut; j++) bDec[j] += y[r * dOut + j] / N;
  return { W_enc: wEnc, b_enc: new Float32Array(dSae), W_dec: wDec, b_dec: bDec };
}

/**
 * Trains on N rows: x [N, dIn] and, for a transcoder, y [N, dOut] (null: an SAE, y = x).
 */
export async function trainTopK(x: Float32Array, dIn: number, y: Float32Array | null, dOut: number, opts: TrainOptions): Promise<TrainedParams> {
  const N = x.length / dIn;
  if (!Number.isInteger(N) || N < 1) throw new TrainError(`training data holds ${x.length} values, not a whole number of rows of ${dIn}`);
  if (y && y.length !== N * dOut) throw new TrainError(`target holds ${y.length} values; ${N} rows of ${dOut} need ${N * dOut}`);
  const shape: TrainShape = { dIn, dOut, dSae: opts.dSae, k: opts.k, applyBDecToInput: y === null };
  if (!(opts.k >= 1 && opts.k <= opts.dSae)) throw new TrainError(`k = ${opts.k} must be in 1..dSae (${opts.dSae})`);
  const target = y ?? x;
  const batch = Math.min(opts.batchSize ?? 256, N);
  const steps = opts.steps ?? Math.max(1000, Math.ceil((40 * N) / batch));
  const lr = opts.lr ?? 1e-3;
  const rng = new Rng(opts.seed ?? 0);
  const params = initParams(shape, target, rng);
  const dims = paramDims(shape);
  const m = Object.fromEntries(PARAMS.map((n) => [n, new Float32Array(params[n].length)])) as Record<ParamName, Float32Array>;
  const v = Object.fromEntries(PARAMS.map((n) => [n, new Float32Array(params[n].length)])) as Record<ParamName, Float32Array>;
  const session = await ort.InferenceSession.create(buildTrainStepGraph(shape), {
    executionProviders: ['cpu'], intraOpNumThreads: opts.threads ?? 0, interOpNumThreads: 1, graphOptimizationLevel: 'all',
  });
  const xb = new Float32Array(batch * dIn);
  const yb = y ? new Float32Array(batch * dOut) : xb;
  let order = shuffled(N, rng);
  let cursor = 0;
  let tailSse = 0;
  let tailCount = 0;
  try {
    for (let step = 1; step <= steps; step++) {
      if (opts.signal?.aborted) throw new TrainError(`training cancelled at step ${step - 1} of ${steps}`);
      for (let r = 0; r < batch; r++) {
        if (cursor === N) {
          order = shuffled(N, rng);
          cursor = 0;
        }
        const row = order[cursor++];
        xb.set(x.subarray(row * dIn, (row + 1) * dIn), r * dIn);
        if (y) yb.set(y.subarray(row * dOut, (row + 1) * dOut), r * dOut);
      }
      const correction = Math.sqrt(1 - ADAM.beta2 ** step) / (1 - ADAM.beta1 ** step);
      const feeds: Record<string, ort.Tensor> = {
        x: f32(xb, [batch, dIn]), y: f32(yb, [batch, dOut]),
        lr: f32(Float32Array.of(lr * correction), [1]), gscale: f32(Float32Array.of(2 / batch), [1]),
      };
      for (const n of PARAMS) {
        feeds[n] = f32(params[n], dims[n]);
        feeds[`m_${n}`] = f32(m[n], dims[n]);
        feeds[`v_${n}`] = f32(v[n], dims[n]);
      }
      const out = await session.run(feeds);
      for (const n of PARAMS) {
        params[n] = out[`new_${n}`].data as Float32Array;
        m[n] = out[`new_m_${n}`].data as Float32Array;
        v[n] = out[`new_v_${n}`].data as Float32Array;
      }
      const mse = Number((out.sse.data as Float32Array)[0]) / (batch * dOut);
      if (step > steps * 0.9) {
        tailSse += mse;
        tailCount++;
      }
      if (step % 50 === 0 || step === steps) opts.onProgress?.({ step, steps, mse });
    }
  } finally {
    await session.release();
  }
  return { wEnc: params.W_enc, bEnc: params.b_enc, wDec: params.W_dec, bDec: params.b_dec, steps, finalTrainMse: tailSse / Math.max(1, tailCount) };
}

function shuffled(n: number, rng: Rng): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Reconstruction quality of `dict` on rows x (and target y for a transcoder; null: y = x). */
export async function measureReconstruction(dict: SparseDictionary, x: Float32Array, y: Float32Array | null, threads = 0): Promise<ReconstructionMetrics> {
  const runner = new DictionaryRunner(dict, threads);
  try {
    const target = y ?? x;
    const { dSae, dOut } = dict;
    const N = x.length / dict.dIn;
    const fired = new Uint8Array(dSae);
    let active = 0;
    let sse = 0;
    const mean = new Float64Array(dOut);
    for (let r = 0; r < N; r++) for (let j = 0; j < dOut; j++) mean[j] += target[r * dOut + j] / N;
    let variance = 0;
    // In chunks so a large set never holds N x dSae latents at once.
    const chunk = 4096;
    for (let start = 0; start < N; start += chunk) {
      const n = Math.min(chunk, N - start);
      const acts = await runner.encode(x.subarray(start * dict.dIn, (start + n) * dict.dIn));
      const out = await runner.decode(acts);
      for (let i = 0; i < acts.length; i++) {
        if (acts[i] !== 0) {
          active++;
          fired[i % dSae] = 1;
        }
      }
      for (let i = 0; i < out.length; i++) {
        const t = target[start * dOut + i];
        sse += (out[i] - t) ** 2;
        variance += (t - mean[i % dOut]) ** 2;
      }
    }
    return {
      explainedVariance: variance > 0 ? 1 - sse / variance : 0,
      mse: sse / (N * dOut),
      l0: active / N,
      deadLatents: dSae - fired.reduce((a, b) => a + b, 0),
      rows: N,
    };
  } finally {
    await runner.release();
  }
}
