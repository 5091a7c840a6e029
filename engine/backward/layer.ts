// The reverse pass through one gpt-oss block, from the gradient at its output (the residual after
// hook_resid_post) to the gradient at its input (the residual before hook_resid_pre). It reuses the
// block's forward tensors as the engine computed them (captured at the hooks listed in SAVED_HOOKS,
// so interventions are already in them) and multiplies by the same weights. Every step is the exact
// derivative written out in docs/gradients.md; the top-k selection is held fixed.
import { blockHook, type BlockHookLocal } from '../hook-address.ts';
import type { AttentionWeights, ExpertWeights } from '../checkpoint.ts';
import type { GptOssConfig } from '../config.ts';
import type { Tensor } from '../tensor.ts';
import type { HookGrads } from './hook-grads.ts';
import { addRmsNormBackward, ropeBackward } from './kernels.ts';

/** Block hooks whose forward values the reverse pass reads (local names). */
export const SAVED_HOOKS = [
  'hook_resid_pre', 'attn.hook_v', 'attn.hook_rot_q', 'attn.hook_rot_k', 'attn.hook_attn_scores', 'attn.hook_pattern',
  'hook_resid_mid', 'ln2.hook_normalized', 'mlp.hook_router_logits', 'mlp.hook_expert_indices', 'mlp.hook_expert_weights',
  'mlp.hook_pre', 'mlp.hook_post',
] as const;
export type SavedLayer = Record<(typeof SAVED_HOOKS)[number], Tensor>;

export interface LayerBackwardInputs {
  cfg: GptOssConfig;
  layer: number;
  lengths: readonly number[];
  /** [B, T, H] */
  dims: [number, number, number];
  attn: AttentionWeights;
  expert: (e: number) => ExpertWeights;
  rope: { cos: Float32Array; sin: Float32Array };
  saved: SavedLayer;
  hooks: HookGrads;
  /** a [M, K] times b [K, N] (b^T for b [N, K] when transB): the dense products, on onnxruntime. */
  matmul: Matmul;
  /** Stop at attn.hook_z: nothing below it in this block (nor upstream) is asked for. */
  stopAfterZ?: boolean;
}

/** Block hooks at or after attn.hook_z: a reverse pass whose earliest wants are these can stop at hook_z. */
export const AFTER_Z = new Set([
  'attn.hook_z', 'attn.hook_result', 'hook_attn_out', 'hook_resid_mid', 'ln2.hook_normalized', 'mlp.hook_router_logits',
  'mlp.hook_expert_weights', 'mlp.hook_pre', 'mlp.hook_post', 'mlp.hook_expert_out', 'hook_mlp_out', 'hook_resid_post',
]);

export type Matmul = (a: Float32Array, M: number, K: number, b: Float32Array, N: number, transB?: boolean) => Promise<Float32Array>;

/** out[o + i] += y[i] for a whole block (the product of a matmul added into a float64 gradient). */
function addInto(out: Float64Array, offset: number, y: Float32Array): void {
  for (let i = 0; i < y.length; i++) out[offset + i] += y[i];
}

/** Gradient at the block's input, given `gOut` at its output (gOut is consumed); with stopAfterZ, nothing usable. */
export async function layerBackward(inp: LayerBackwardInputs, gOut: Float64Array): Promise<Float64Array> {
  const gMid = await moeBackward(inp, gOut);
  return attentionBackward(inp, gMid);
}

/** From the gradient at hook_resid_post to the gradient at hook_resid_mid (after its intervention). */
async function moeBackward(inp: LayerBackwardInputs, g: Float64Array): Promise<Float64Array> {
  const { cfg, saved, hooks, lengths } = inp;
  const [B, T, H] = inp.dims;
  const { numExperts: E, expertsPerToken: k, intermediateSize: I, swigluLimit: limit } = cfg;
  const p = (local: BlockHookLocal) => blockHook(inp.layer, local);
  hooks.at(p('hook_resid_post'), g, [B, T, H]);
  const gMid = g;
  const gMlp = g.slice();
  hooks.at(p('hook_mlp_out'), gMlp, [B, T, H]);

  // hook_expert_out is summed over every expert, so each expert's slice receives the MoE output's gradient.
  const eoName = p('mlp.hook_expert_out');
  let gEo: Float64Array | null = null;
  if (hooks.touches(eoName)) {
    gEo = new Float64Array(B * T * E * H);
    for (let tok = 0; tok < B * T; tok++) for (let e = 0; e < E; e++) gEo.set(gMlp.subarray(tok * H, (tok + 1) * H), (tok * E + e) * H);
    hooks.at(eoName, gEo, [B, T, E, H]);
  }
  const neuronDims = [B, T, E, I];
  const postName = p('mlp.hook_post');
  const preName = p('mlp.hook_pre');
  const recPost = hooks.touches(postName) ? new Float64Array(B * T * E * I) : null;
  const recPre = hooks.touches(preName) ? new Float64Array(B * T * E * I) : null;
  const keepPost = hooks.keep(postName, neuronDims);
  const keepPre = hooks.keep(preName, neuronDims);

  const indices = saved['mlp.hook_expert_indices'].data;
  const weights = saved['mlp.hook_expert_weights'].data;
  const pre = saved['mlp.hook_pre'].data;
  const post = saved['mlp.hook_post'].data;
  const gW = new Float64Array(B * T * k);
  const gLn2 = new Float64Array(B * T * H);
  // Tokens whose output gradient is zero (in the last block, all but each row's last position) skip the experts.
  const live = (tok: number) => {
    for (let c = 0; c < H; c++) if (gMlp[tok * H + c] !== 0) return true;
    return false;
  };
  const slots: number[][] = Array.from({ length: E }, () => []);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < lengths[b]; t++) {
      if (!live(b * T + t)) continue;
      for (let j = 0; j < k; j++) slots[indices[(b * T + t) * k + j]].push((b * T + t) * k + j);
    }
  }

  const alpha = 1.702;
  for (let e = 0; e < E; e++) {
    const mine = slots[e];
    const n = mine.length;
    if (n === 0) continue;
    const w = inp.expert(e);
    const tokOf = (s: number) => Math.floor(s / k);
    const src = gEo ?? gMlp;
    const offOf = (s: number) => (gEo ? (tokOf(s) * E + e) * H : tokOf(s) * H);
    // G1 = g W_down (unweighted): the post gradient is weight * G1, and the routing weight's gradient
    // <W_down post + b_down, g> is <post, G1> + <b_down, g> (no need to recompute the expert's output).
    const G = new Float32Array(n * H);
    mine.forEach((s, r) => G.set(src.subarray(offOf(s), offOf(s) + H), r * H));
    const G1 = await inp.matmul(G, n, H, w.downW, I);
    const GH = new Float32Array(n * 2 * I);
    let X: Float32Array | null = null; // ln2 rows, read only where up cannot be recovered from post
    mine.forEach((s, r) => {
      const nOff = (tokOf(s) * E + e) * I;
      let gWs = 0;
      for (let c = 0; c < H; c++) gWs += w.downB[c] * src[offOf(s) + c];
      for (let u = 0; u < I; u++) gWs += post[nOff + u] * G1[r * I + u];
      gW[s] = gWs;
      for (let u = 0; u < I; u++) {
        let gPost = weights[s] * G1[r * I + u];
        if (recPost) recPost[nOff + u] = gPost;
        if (keepPost) gPost *= keepPost[nOff + u];
        // Clamped SwiGLU: a = gate_c sigmoid(alpha gate_c) (up_c + 1), gate_c = min(gate, limit), up_c = clamp(up).
        const gate = pre[nOff + u];
        const gc = Math.min(gate, limit);
        const sg = 1 / (1 + Math.exp(-alpha * gc));
        // up_c + 1 = post / (gate_c sigmoid(alpha gate_c)), to float32 rounding; where post is ~0 or up
        // sits at a clamp edge, the up projection of this one unit is recomputed instead.
        let up1 = post[nOff + u] / (gc * sg);
        let inside = Math.abs(up1 - 1) < limit * (1 - 1e-5);
        if (!(Math.abs(post[nOff + u]) > 1e-30) || !Number.isFinite(up1) || Math.abs(Math.abs(up1 - 1) - limit) <= limit * 1e-5) {
          X ??= inp.saved['ln2.hook_normalized'].data;
          let up = w.gateUpB[2 * u + 1];
          const xo = tokOf(s) * H;
          const wo = (2 * u + 1) * H;
          for (let c = 0; c < H; c++) up += X[xo + c] * w.gateUpW[wo + c];
          up1 = Math.min(Math.max(up, -limit), limit) + 1;
          inside = up > -limit && up < limit;
        }
        let gGate = gate < limit ? gPost * (sg + alpha * gc * sg * (1 - sg)) * up1 : 0;
        if (recPre) recPre[nOff + u] = gGate;
        if (keepPre) gGate *= keepPre[nOff + u];
        GH[r * 2 * I + 2 * u] = gGate;
        GH[r * 2 * I + 2 * u + 1] = inside ? gPost * gc * sg : 0;
      }
    });
    const GX = await inp.matmul(GH, n, 2 * I, w.gateUpW, H);
    mine.forEach((s, r) => {
      const o = tokOf(s) * H;
      for (let c = 0; c < H; c++) gLn2[o + c] += GX[r * H + c];
    });
  }
  if (recPost) hooks.record(postName, recPost, neuronDims);
  if (recPre) hooks.record(preName, recPre, neuronDims);

  // Router: weights = softmax over the k selected logits (selection fixed).
  hooks.at(p('mlp.hook_expert_weights'), gW, [B, T, k]);
  const logits = saved['mlp.hook_router_logits'].data;
  const gRl = new Float64Array(B * T * E);
  const w0 = new Float64Array(k);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < lengths[b]; t++) {
      const tok = b * T + t;
      let max = -Infinity;
      for (let j = 0; j < k; j++) max = Math.max(max, logits[tok * E + indices[tok * k + j]]);
      let sum = 0;
      for (let j = 0; j < k; j++) sum += (w0[j] = Math.exp(logits[tok * E + indices[tok * k + j]] - max));
      let dot = 0;
      for (let j = 0; j < k; j++) dot += (w0[j] /= sum) * gW[tok * k + j];
      for (let j = 0; j < k; j++) gRl[tok * E + indices[tok * k + j]] += w0[j] * (gW[tok * k + j] - dot);
    }
  }
  hooks.at(p('mlp.hook_router_logits'), gRl, [B, T, E]);
  addInto(gLn2, 0, await inp.matmul(Float32Array.from(gRl), B * T, E, inp.attn.routerW, H));
  hooks.at(p('ln2.hook_normalized'), gLn2, [B, T, H]);
  addRmsNormBackward(saved['hook_resid_mid'].data, inp.attn.postNorm, gLn2, gMid, B * T, H, inp.cfg.rmsNormEps);
  hooks.at(p('hook_resid_mid'), gMid, [B, T, H]);
  return gMid;
}

/** From the gradient at hook_resid_mid to the gradient at the block's input. */
async function attentionBackward(inp: LayerBackwardInputs, gMid: Float64Array): Promise<Float64Array> {
  const { cfg, saved, hooks, attn: w } = inp;
  const [B, T, H] = inp.dims;
  const { numHeads: nH, numKvHeads: nKV, headDim: d } = cfg;
  const p = (local: BlockHookLocal) => blockHook(inp.layer, local);
  const gX = gMid.slice(); // the residual path
  const gAttn = gMid;
  hooks.at(p('hook_attn_out'), gAttn, [B, T, H]);

  const qd = nH * d;
  const gZ = new Float64Array(B * T * qd);
  const resName = p('attn.hook_result');
  if (hooks.touches(resName)) {
    // Each head's result receives the attention output's gradient; z_h feeds only its own slice of o_proj.
    const gRes = new Float64Array(B * T * nH * H);
    for (let tok = 0; tok < B * T; tok++) for (let h = 0; h < nH; h++) gRes.set(gAttn.subarray(tok * H, (tok + 1) * H), (tok * nH + h) * H);
    hooks.at(resName, gRes, [B, T, nH, H]);
    for (let tok = 0; tok < B * T; tok++) {
      for (let h = 0; h < nH; h++) {
        for (let c = 0; c < H; c++) {
          const g = gRes[(tok * nH + h) * H + c];
          if (g === 0) continue;
          const row = c * qd + h * d;
          for (let i = 0; i < d; i++) gZ[tok * qd + h * d + i] += g * w.oW[row + i];
        }
      }
    }
  } else {
    addInto(gZ, 0, await inp.matmul(Float32Array.from(gAttn), B * T, H, w.oW, qd));
  }
  hooks.at(p('attn.hook_z'), gZ, [B, T, nH, d]);
  if (inp.stopAfterZ) return gX;

  const v = saved['attn.hook_v'].data;
  const P = saved['attn.hook_pattern'].data;
  const S = saved['attn.hook_attn_scores'].data;
  const rotQ = saved['attn.hook_rot_q'].data;
  const rotK = saved['attn.hook_rot_k'].data;
  const group = nH / nKV;
  const kd = nKV * d;
  const gP = new Float64Array(B * nH * T * T);
  const gV = new Float64Array(B * T * kd);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nH; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const zOff = (b * T + i) * qd + h * d;
        const row = ((b * nH + h) * T + i) * T;
        let live = false;
        for (let c = 0; c < d && !live; c++) live = gZ[zOff + c] !== 0;
        if (!live) continue; // (the last block: only each row's last query carries a gradient)
        for (let j = 0; j < T; j++) {
          const vOff = (b * T + j) * kd + g * d;
          let s = 0;
          for (let c = 0; c < d; c++) s += gZ[zOff + c] * v[vOff + c];
          gP[row + j] = s;
          const pij = P[row + j];
          if (pij !== 0) for (let c = 0; c < d; c++) gV[vOff + c] += pij * gZ[zOff + c];
        }
      }
    }
  }
  const patDims = [B, nH, T, T];
  hooks.at(p('attn.hook_pattern'), gP, patDims);

  // Softmax over [scores, sink] with the sink column dropped: recompute it from the scores (the
  // captured pattern may be intervened on; the softmax's own output is what its derivative needs).
  const gS = new Float64Array(B * nH * T * T);
  const p0 = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nH; h++) {
      const sink = w.sinks[h];
      for (let i = 0; i < T; i++) {
        const row = ((b * nH + h) * T + i) * T;
        let live = false;
        for (let j = 0; j < T && !live; j++) live = gP[row + j] !== 0;
        if (!live) continue;
        let max = sink;
        for (let j = 0; j < T; j++) max = Math.max(max, S[row + j]);
        let Z = Math.exp(sink - max);
        for (let j = 0; j < T; j++) Z += (p0[j] = Math.exp(S[row + j] - max));
        let dot = 0;
        for (let j = 0; j < T; j++) dot += (p0[j] /= Z) * gP[row + j];
        for (let j = 0; j < T; j++) gS[row + j] = p0[j] * (gP[row + j] - dot);
      }
    }
  }
  hooks.at(p('attn.hook_attn_scores'), gS, patDims);

  const scale = 1 / Math.sqrt(d);
  const gQ = new Float64Array(B * T * qd);
  const gK = new Float64Array(B * T * kd);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nH; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const row = ((b * nH + h) * T + i) * T;
        const qOff = (b * T + i) * qd + h * d;
        for (let j = 0; j < T; j++) {
          const gs = gS[row + j] * scale;
          if (gs === 0) continue;
          const kOff = (b * T + j) * kd + g * d;
          for (let c = 0; c < d; c++) {
            gQ[qOff + c] += gs * rotK[kOff + c];
            gK[kOff + c] += gs * rotQ[qOff + c];
          }
        }
      }
    }
  }
  hooks.at(p('attn.hook_rot_q'), gQ, [B, T, nH, d]);
  hooks.at(p('attn.hook_rot_k'), gK, [B, T, nKV, d]);
  ropeBackward(gQ, B, T, nH, d, inp.rope.cos, inp.rope.sin);
  ropeBackward(gK, B, T, nKV, d, inp.rope.cos, inp.rope.sin);
  hooks.at(p('attn.hook_q'), gQ, [B, T, nH, d]);
  hooks.at(p('attn.hook_k'), gK, [B, T, nKV, d]);
  hooks.at(p('attn.hook_v'), gV, [B, T, nKV, d]);

  const gLn1 = new Float64Array(B * T * H);
  addInto(gLn1, 0, await inp.matmul(Float32Array.from(gQ), B * T, qd, w.qW, H));
  addInto(gLn1, 0, await inp.matmul(Float32Array.from(gK), B * T, kd, w.kW, H));
  addInto(gLn1, 0, await inp.matmul(Float32Array.from(gV), B * T, kd, w.vW, H));
  hooks.at(p('ln1.hook_normalized'), gLn1, [B, T, H]);
  addRmsNormBackward(saved['hook_resid_pre'].data, w.inputNorm, gLn1, gX, B * T, H, cfg.rmsNormEps);
  hooks.at(p('hook_resid_pre'), gX, [B, T, H]);
  return gX;
}
