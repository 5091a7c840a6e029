// AtP*'s QK fix (Kramar et al. 2024): plain attribution patching linearises every later attention
// softmax, which badly over- or under-estimates a site whose change moves a saturated attention
// pattern (IOI's S-inhibition head steering the name movers' queries). The fix splits the gradient
// at a site's residual write by the first thing downstream that reads it:
//   - paths whose first hop is the query or key of a later head h': their share of the linear
//     estimate is d . gQK(l') (the gradient that reached layer l''s residual through its q/k
//     projections alone). That share is replaced by the exact change of h''s pattern,
//     sum over (query, key) of dMetric/dA(h') * (softmax(S + dS) - softmax(S)), where the new scores
//     come from recomputing layer l''s input norm, q and k projections, RoPE and softmax (with sink,
//     causal and sliding masks) on the corrupted residual plus the site's write;
//   - every other path (values, MLPs, the unembedding) keeps its linear estimate.
// The decomposition is exact calculus (each path from the site to the metric is counted once: by the
// first pattern it enters, with dMetric/dA the total derivative), so for tiny changes the fixed
// estimate equals plain AtP.
import type { GptOssModel } from '../engine/model.ts';
import type { AttentionWeights } from '../engine/checkpoint.ts';
import { addRmsNormBackward } from '../engine/backward/kernels.ts';
import { ropeTables, type RopeTables } from '../engine/rope.ts';
import { expandTo, type Tensor } from '../engine/tensor.ts';
import { ToolError } from './define.ts';
import { blockHook, inBlock } from '../engine/hook-address.ts';

/** Sites whose residual write the fix can form (a neuron's goes through its expert's down projection and routing weight). */
const WRITES: Record<string, 'residual' | 'head' | 'expert'> = {
  hook_resid_pre: 'residual', hook_resid_mid: 'residual', hook_resid_post: 'residual', hook_attn_out: 'residual', hook_mlp_out: 'residual',
  'attn.hook_z': 'head', 'mlp.hook_expert_out': 'expert',
};

export interface QkFixSite {
  layer: number;
  /** The site's mask over the hook's dims without batch (as patch_activations builds it). */
  mask: Tensor;
}

/** The first layer whose attention reads a site of `hookLocal` at `layer` (resid_pre feeds its own layer). */
export function firstReader(hookLocal: string, layer: number): number {
  return hookLocal === 'hook_resid_pre' ? layer : layer + 1;
}

/** Refuses sites the fix cannot handle, naming those it can. */
export function checkQkFixSite(site: string, hookLocal: string): void {
  if (!WRITES[hookLocal]) throw new ToolError(`qkFix is not available for site "${site}" (its residual write is not linear in the hook); valid with qkFix: resid_pre, resid_mid, resid_post, attn_out, mlp_out, head, expert`);
}

/** The hooks the fix needs from the corrupted forward + backward, for reader layers from..L-1. */
export function qkFixHooks(from: number, numLayers: number): { capture: string[]; grads: string[] } {
  const layers = Array.from({ length: Math.max(0, numLayers - from) }, (_, i) => from + i);
  return {
    capture: layers.map((l) => blockHook(l, 'hook_resid_pre')),
    grads: layers.flatMap((l) => (['attn.hook_pattern', 'attn.hook_q', 'attn.hook_k'] as const).map((h) => blockHook(l, h))),
  };
}

interface Inputs {
  model: GptOssModel;
  hookLocal: string;
  sites: readonly QkFixSite[];
  /** Clean and corrupted activations at each site layer's hook, by full hook name. */
  clean: Map<string, Tensor>;
  corrupted: Map<string, Tensor>;
  /** The corrupted run's gradients (qkFixHooks(...).grads) and lengths. */
  grads: Map<string, Tensor>;
  lengths: readonly number[];
  signal?: AbortSignal;
}

/** In-place half-split RoPE on rows [n, d] of `x` at position `t`. */
function rope(x: Float64Array, off: number, heads: number, d: number, t: number, tab: RopeTables): void {
  const half = d / 2;
  for (let h = 0; h < heads; h++) {
    const b = off + h * d;
    for (let i = 0; i < half; i++) {
      const c = tab.cos[t * half + i];
      const s = tab.sin[t * half + i];
      const x1 = x[b + i];
      const x2 = x[b + half + i];
      x[b + i] = x1 * c - x2 * s;
      x[b + half + i] = x2 * c + x1 * s;
    }
  }
}

/** x / rms(x) * w for rows of x [rows, H], in float64. */
function rmsNorm(x: ArrayLike<number>, off: number, w: Float32Array, H: number, eps: number, out: Float64Array, outOff: number): void {
  let ss = 0;
  for (let i = 0; i < H; i++) ss += x[off + i] * x[off + i];
  const inv = 1 / Math.sqrt(ss / H + eps);
  for (let i = 0; i < H; i++) out[outOff + i] = x[off + i] * inv * w[i];
}

/**
 * Rotated q [rows, nH*d] and k [rows, nKV*d] from normalised rows u [rows, H] at positions `pos`
 * (with the biases, or without them for a difference of two inputs: the projections are linear).
 */
async function rotatedQk(model: GptOssModel, w: AttentionWeights, u: Float64Array, pos: readonly number[], tab: RopeTables, bias: boolean): Promise<{ q: Float64Array; k: Float64Array }> {
  const { hiddenSize: H, numHeads: nH, numKvHeads: nKV, headDim: d } = model.config;
  const rows = pos.length;
  const u32 = Float32Array.from(u);
  const project = async (W: Float32Array, b: Float32Array, heads: number) => {
    const n = heads * d;
    const y = await model.matmul(u32, rows, H, W, n, true);
    const out = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < n; i++) out[r * n + i] = y[r * n + i] + (bias ? b[i] : 0);
      rope(out, r * n, heads, d, pos[r], tab);
    }
    return out;
  };
  return { q: await project(w.qW, w.qB, nH), k: await project(w.kW, w.kB, nKV) };
}

/** Layer l's attention as the corrupted run computed it, recomputed in float64 for exact pattern changes. */
interface ReaderLayer {
  w: AttentionWeights;
  /** Normalised input rows and their rotated q / k [N*T, ...]. */
  uOld: Float64Array;
  old: { q: Float64Array; k: Float64Array };
  visible: (i: number, j: number) => boolean;
  /** sum over keys of dMetric/dA * softmax row (sink in the normaliser) for query row i of head h. */
  rowTerm: (n: number, h: number, i: number, q: Float64Array, qOff: number, key: (j: number) => [Float64Array, number]) => number;
  /** rowTerm of the unchanged rows, [N, nH, T]. */
  base: Float64Array;
}

async function readerLayer(model: GptOssModel, l: number, resid: Float32Array, gP: Float32Array, lengths: readonly number[], T: number, tab: RopeTables): Promise<ReaderLayer> {
  const cfg = model.config;
  const { hiddenSize: H, numHeads: nH, numKvHeads: nKV, headDim: d } = cfg;
  const N = lengths.length;
  const group = nH / nKV;
  const qd = nH * d;
  const kd = nKV * d;
  const scale = 1 / Math.sqrt(d);
  const w = model.attentionWeights(l);
  const sliding = cfg.layerTypes[l] === 'sliding_attention';
  const W = cfg.slidingWindow;
  const pos = Array.from({ length: N * T }, (_, r) => r % T);
  const uOld = new Float64Array(N * T * H);
  for (let r = 0; r < N * T; r++) rmsNorm(resid, r * H, w.inputNorm, H, cfg.rmsNormEps, uOld, r * H);
  const old = await rotatedQk(model, w, uOld, pos, tab, true);
  const visible = (i: number, j: number) => j <= i && !(sliding && i - j >= W);
  const rowTerm: ReaderLayer['rowTerm'] = (n, h, i, q, qOff, key) => {
    const g = Math.floor(h / group);
    const sink = w.sinks[h];
    const sc = new Float64Array(i + 1);
    let max = sink;
    for (let j = 0; j <= i; j++) {
      if (!visible(i, j)) continue;
      const [k, kOff] = key(j);
      let s = 0;
      for (let c = 0; c < d; c++) s += q[qOff + c] * k[kOff + g * d + c];
      sc[j] = s * scale;
      max = Math.max(max, sc[j]);
    }
    let Z = Math.exp(sink - max);
    for (let j = 0; j <= i; j++) if (visible(i, j)) Z += (sc[j] = Math.exp(sc[j] - max));
    const row = ((n * nH + h) * T + i) * T;
    let term = 0;
    for (let j = 0; j <= i; j++) if (visible(i, j)) term += (gP[row + j] * sc[j]) / Z;
    return term;
  };
  const base = new Float64Array(N * nH * T);
  for (let n = 0; n < N; n++) {
    for (let h = 0; h < nH; h++) {
      for (let i = 0; i < lengths[n]; i++) base[(n * nH + h) * T + i] = rowTerm(n, h, i, old.q, (n * T + i) * qd + h * d, (j) => [old.k, (n * T + j) * kd]);
    }
  }
  return { w, uOld, old, visible, rowTerm, base };
}

/**
 * Rotated q / k of rows (example * T + position) whose input is the corrupted residual plus `delta`
 * [rows, H]: old + the projection of the change of the normalised rows (float32 products of a
 * float64 difference, so rounding scales with the change, not with q and k).
 */
async function shiftedQk(model: GptOssModel, layer: ReaderLayer, resid: Float32Array, rows: readonly number[], delta: Float64Array, T: number, tab: RopeTables): Promise<{ q: Float64Array; k: Float64Array }> {
  const { hiddenSize: H, numHeads: nH, numKvHeads: nKV, headDim: d, rmsNormEps } = model.config;
  const qd = nH * d;
  const kd = nKV * d;
  const x1 = new Float64Array(H);
  const du = new Float64Array(rows.length * H);
  rows.forEach((row, r) => {
    for (let c = 0; c < H; c++) x1[c] = resid[row * H + c] + delta[r * H + c];
    rmsNorm(x1, 0, layer.w.inputNorm, H, rmsNormEps, du, r * H);
    for (let c = 0; c < H; c++) du[r * H + c] -= layer.uOld[row * H + c];
  });
  const nu = await rotatedQk(model, layer.w, du, rows.map((row) => row % T), tab, false);
  rows.forEach((row, r) => {
    for (let i = 0; i < qd; i++) nu.q[r * qd + i] += layer.old.q[row * qd + i];
    for (let i = 0; i < kd; i++) nu.k[r * kd + i] += layer.old.k[row * kd + i];
  });
  return nu;
}

/**
 * Per site: the QK fix's correction to AtP's estimate of the mean metric (add it to the plain
 * estimate). Each reader layer costs one q/k projection of the rows a site changes, and the score
 * rows those rows touch.
 */
export async function qkFixCorrections(inp: Inputs): Promise<Float64Array> {
  const { model, hookLocal, sites, lengths } = inp;
  const cfg = model.config;
  const { numLayers: L, hiddenSize: H, numHeads: nH, numKvHeads: nKV, headDim: d } = cfg;
  const N = lengths.length;
  const out = new Float64Array(sites.length);
  const kind = WRITES[hookLocal];
  if (sites.length === 0) return out;
  const T = inp.corrupted.get(inBlock(sites[0].layer, hookLocal))!.dims[1];
  const tab = ropeTables(cfg, T);
  const qd = nH * d;
  const kd = nKV * d;

  // Each site's residual write [rows, H] on the (example * T + position) rows it changes.
  const writes = await Promise.all(sites.map((s) => residualWrite(inp, s, kind, T)));

  for (let l = Math.min(...sites.map((s) => firstReader(hookLocal, s.layer))); l < L; l++) {
    if (inp.signal?.aborted) throw new ToolError('attribution_patch cancelled');
    const readers = sites.flatMap((s, i) => (firstReader(hookLocal, s.layer) <= l && writes[i].rows.length ? [i] : []));
    if (readers.length === 0) continue;
    const resid = inp.corrupted.get(blockHook(l, 'hook_resid_pre'))!.data;
    const layer = await readerLayer(model, l, resid, inp.grads.get(blockHook(l, 'attn.hook_pattern'))!.data, lengths, T, tab);
    const { old, visible, rowTerm, base, w } = layer;

    // gQK: the gradient at the residual entering layer l through its q and k projections alone.
    const gLn = new Float64Array(N * T * H);
    const gq = await model.matmul(Float32Array.from(inp.grads.get(blockHook(l, 'attn.hook_q'))!.data), N * T, qd, w.qW, H);
    const gk = await model.matmul(Float32Array.from(inp.grads.get(blockHook(l, 'attn.hook_k'))!.data), N * T, kd, w.kW, H);
    for (let i = 0; i < gLn.length; i++) gLn[i] = gq[i] + gk[i];
    const gQK = new Float64Array(N * T * H);
    addRmsNormBackward(resid, w.inputNorm, gLn, gQK, N * T, H, cfg.rmsNormEps);

    for (const si of readers) {
      const { rows, delta } = writes[si];
      let linear = 0;
      rows.forEach((row, r) => {
        for (let c = 0; c < H; c++) linear += delta[r * H + c] * gQK[row * H + c];
      });
      const nu = await shiftedQk(model, layer, resid, rows, delta, T, tab);
      const at = new Map(rows.map((row, r) => [row, r]));
      let exact = 0;
      for (let n = 0; n < N; n++) {
        const mine = rows.filter((row) => Math.floor(row / T) === n).map((row) => row % T);
        if (mine.length === 0) continue;
        for (let i = mine[0]; i < lengths[n]; i++) {
          // Row i changes when its query changed or a key it sees did.
          if (!mine.some((j) => j === i || visible(i, j))) continue;
          const qi = at.get(n * T + i);
          const key = (j: number): [Float64Array, number] => {
            const kj = at.get(n * T + j);
            return kj === undefined ? [old.k, (n * T + j) * kd] : [nu.k, kj * kd];
          };
          for (let h = 0; h < nH; h++) {
            const [q, qOff] = qi === undefined ? [old.q, (n * T + i) * qd + h * d] : [nu.q, qi * qd + h * d];
            exact += rowTerm(n, h, i, q, qOff, key) - base[(n * nH + h) * T + i];
          }
        }
      }
      out[si] += (exact - linear) / N;
    }
  }
  return out;
}

/** A site's write into the residual stream, on the rows it changes: the masked (clean - corrupted) mapped as the block maps the hook. */
async function residualWrite(inp: Inputs, s: QkFixSite, kind: 'residual' | 'head' | 'expert', T: number): Promise<{ rows: number[]; delta: Float64Array }> {
  const { model, lengths } = inp;
  const { hiddenSize: H, numHeads: nH, headDim: d } = model.config;
  const N = lengths.length;
  const name = inBlock(s.layer, inp.hookLocal);
  const c = inp.clean.get(name)!;
  const r = inp.corrupted.get(name)!;
  const inner = c.dims.slice(1);
  const per = inner.reduce((a, b) => a * b, 1);
  const perRow = per / T;
  const mask = expandTo(s.mask, inner).data;
  const rows: number[] = [];
  const slices: Float64Array[] = [];
  const masked = new Float64Array(per);
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < per; i++) masked[i] = mask[i] === 0 ? 0 : mask[i] * (c.data[n * per + i] - r.data[n * per + i]);
    for (let t = 0; t < lengths[n]; t++) {
      const row = masked.slice(t * perRow, (t + 1) * perRow);
      if (!row.some((x) => x !== 0)) continue;
      rows.push(n * T + t);
      slices.push(row);
    }
  }
  const delta = new Float64Array(rows.length * H);
  if (kind === 'residual') slices.forEach((row, k) => delta.set(row, k * H));
  else if (kind === 'expert') slices.forEach((row, k) => { for (let i = 0; i < row.length; i++) delta[k * H + (i % H)] += row[i]; });
  else if (rows.length) {
    // A head's write is z through o_proj (oW [H, nH*d]); the mask has zeroed the other heads.
    const dz = new Float32Array(rows.length * nH * d);
    slices.forEach((row, k) => dz.set(row, k * nH * d));
    const y = await model.matmul(dz, rows.length, nH * d, model.attentionWeights(s.layer).oW, H, true);
    for (let i = 0; i < y.length; i++) delta[i] = y[i];
  }
  return { rows, delta };
}
