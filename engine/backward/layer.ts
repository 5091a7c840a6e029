// The reverse pass through one gpt-oss block, from the gradient at its output (the residual after
// hook_resid_post) to the gradient at its input (the residual before hook_resid_pre). It reuses the
// block's forward tensors as the engine computed them (captured at the hooks listed in SAVED_HOOKS,
// so interventions are already in them) and multiplies by the same weights. Every step is the exact
// derivative written out in docs/gradients.md; the top-k selection is held fixed.
import type { AttentionWeights, ExpertWeights } from '../checkpoint.ts';
import type { GptOssConfig } from '../config.ts';
import type { Tensor } from '../tensor.ts';
import type { HookGrads } from './hook-grads.ts';
import { addMatTVec, addRmsNormBackward, dotRow, ropeBackward } from './kernels.ts';

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
}

/** Gradient at the block's input, given `gOut` at its output (gOut is consumed). */
export function layerBackward(inp: LayerBackwardInputs, gOut: Float64Array): Float64Array {
  const gMid = moeBackward(inp, gOut);
  return attentionBackward(inp, gMid);
}

/** From the gradient at hook_resid_post to the gradient at hook_resid_mid (after its intervention). */
function moeBackward(inp: LayerBackwardInputs, g: Float64Array): Float64Array {
  const { cfg, saved, hooks, lengths } = inp;
  const [B, T, H] = inp.dims;
  const { numExperts: E, expertsPerToken: k, intermediateSize: I, swigluLimit: limit } = cfg;
  const p = `blocks.${inp.layer}.`;
  hooks.at(`${p}hook_resid_post`, g, [B, T, H]);
  const gMid = g;
  const gMlp = g.slice();
  hooks.at(`${p}hook_mlp_out`, gMlp, [B, T, H]);

  // hook_expert_out is summed over every expert, so each expert's slice receives the MoE output's gradient.
  const eoName = `${p}mlp.hook_expert_out`;
  let gEo: Float64Array | null = null;
  if (hooks.touches(eoName)) {
    gEo = new Float64Array(B * T * E * H);
    for (let tok = 0; tok < B * T; tok++) for (let e = 0; e < E; e++) gEo.set(gMlp.subarray(tok * H, (tok + 1) * H), (tok * E + e) * H);
    hooks.at(eoName, gEo, [B, T, E, H]);
  }
  const neuronDims = [B, T, E, I];
  const postName = `${p}mlp.hook_post`;
  const preName = `${p}mlp.hook_pre`;
  const recPost = hooks.touches(postName) ? new Float64Array(B * T * E * I) : null;
  const recPre = hooks.touches(preName) ? new Float64Array(B * T * E * I) : null;
  const keepPost = hooks.keep(postName, neuronDims);
  const keepPre = hooks.keep(preName, neuronDims);

  const indices = saved['mlp.hook_expert_indices'].data;
  const weights = saved['mlp.hook_expert_weights'].data;
  const pre = saved['mlp.hook_pre'].data;
  const post = saved['mlp.hook_post'].data;
  const ln2 = saved['ln2.hook_normalized'].data;
  const gW = new Float64Array(B * T * k);
  const gLn2 = new Float64Array(B * T * H);
  const slots: number[][] = Array.from({ length: E }, () => []);
  for (let b = 0; b < B; b++) for (let t = 0; t < lengths[b]; t++) for (let j = 0; j < k; j++) slots[indices[(b * T + t) * k + j]].push((b * T + t) * k + j);

  const y = new Float64Array(H);
  const gy = new Float64Array(H);
  const gPost = new Float64Array(I);
  const gH = new Float64Array(2 * I); // interleaved like gate_up rows: even gate, odd up
  const alpha = 1.702;
  for (let e = 0; e < E; e++) {
    if (slots[e].length === 0) continue;
    const w = inp.expert(e);
    for (const s of slots[e]) {
      const tok = Math.floor(s / k);
      const nOff = (tok * E + e) * I;
      const gEoOff = gEo ? (tok * E + e) * H : tok * H;
      const gEoSrc = gEo ?? gMlp;
      // y_e = W_down post + b_down (unweighted); the engine's output is weight * y_e.
      let gWs = 0;
      for (let c = 0; c < H; c++) {
        y[c] = dotRow(w.downW, c, I, post, nOff) + w.downB[c];
        gWs += y[c] * gEoSrc[gEoOff + c];
        gy[c] = weights[s] * gEoSrc[gEoOff + c];
      }
      gW[s] = gWs;
      gPost.fill(0);
      addMatTVec(w.downW, gy, 0, H, I, gPost as Float64Array, 0);
      if (recPost) recPost.set(gPost, nOff);
      if (keepPost) for (let u = 0; u < I; u++) gPost[u] *= keepPost[nOff + u];
      // Clamped SwiGLU: a = gate_c sigmoid(alpha gate_c) (up_c + 1), gate_c = min(gate, limit), up_c = clamp(up).
      for (let u = 0; u < I; u++) {
        const gate = pre[nOff + u];
        const up = dotRow(w.gateUpW, 2 * u + 1, H, ln2, tok * H) + w.gateUpB[2 * u + 1];
        const gc = Math.min(gate, limit);
        const uc = Math.min(Math.max(up, -limit), limit);
        const sg = 1 / (1 + Math.exp(-alpha * gc));
        let gGate = gate < limit ? gPost[u] * (sg + alpha * gc * sg * (1 - sg)) * (uc + 1) : 0;
        const gUp = up > -limit && up < limit ? gPost[u] * gc * sg : 0;
        if (recPre) recPre[nOff + u] = gGate;
        if (keepPre) gGate *= keepPre[nOff + u];
        gH[2 * u] = gGate;
        gH[2 * u + 1] = gUp;
      }
      addMatTVec(w.gateUpW, gH, 0, 2 * I, H, gLn2, tok * H);
    }
  }
  if (recPost) hooks.record(postName, recPost, neuronDims);
  if (recPre) hooks.record(preName, recPre, neuronDims);

  // Router: weights = softmax over the k selected logits (selection fixed).
  hooks.at(`${p}mlp.hook_expert_weights`, gW, [B, T, k]);
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
  hooks.at(`${p}mlp.hook_router_logits`, gRl, [B, T, E]);
  for (let tok = 0; tok < B * T; tok++) addMatTVec(inp.attn.routerW, gRl, tok * E, E, H, gLn2, tok * H);
  hooks.at(`${p}ln2.hook_normalized`, gLn2, [B, T, H]);
  addRmsNormBackward(saved['hook_resid_mid'].data, inp.attn.postNorm, gLn2, gMid, B * T, H, inp.cfg.rmsNormEps);
  hooks.at(`${p}hook_resid_mid`, gMid, [B, T, H]);
  return gMid;
}

/** From the gradient at hook_resid_mid to the gradient at the block's input. */
function attentionBackward(inp: LayerBackwardInputs, gMid: Float64Array): Float64Array {
  const { cfg, saved, hooks, attn: w } = inp;
  const [B, T, H] = inp.dims;
  const { numHeads: nH, numKvHeads: nKV, headDim: d } = cfg;
  const p = `blocks.${inp.layer}.`;
  const gX = gMid.slice(); // the residual path
  const gAttn = gMid;
  hooks.at(`${p}hook_attn_out`, gAttn, [B, T, H]);

  const qd = nH * d;
  const gZ = new Float64Array(B * T * qd);
  const resName = `${p}attn.hook_result`;
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
    for (let tok = 0; tok < B * T; tok++) addMatTVec(w.oW, gAttn, tok * H, H, qd, gZ, tok * qd);
  }
  hooks.at(`${p}attn.hook_z`, gZ, [B, T, nH, d]);

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
  hooks.at(`${p}attn.hook_pattern`, gP, patDims);

  // Softmax over [scores, sink] with the sink column dropped: recompute it from the scores (the
  // captured pattern may be intervened on; the softmax's own output is what its derivative needs).
  const gS = new Float64Array(B * nH * T * T);
  const p0 = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nH; h++) {
      const sink = w.sinks[h];
      for (let i = 0; i < T; i++) {
        const row = ((b * nH + h) * T + i) * T;
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
  hooks.at(`${p}attn.hook_attn_scores`, gS, patDims);

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
  hooks.at(`${p}attn.hook_rot_q`, gQ, [B, T, nH, d]);
  hooks.at(`${p}attn.hook_rot_k`, gK, [B, T, nKV, d]);
  ropeBackward(gQ, B, T, nH, d, inp.rope.cos, inp.rope.sin);
  ropeBackward(gK, B, T, nKV, d, inp.rope.cos, inp.rope.sin);
  hooks.at(`${p}attn.hook_q`, gQ, [B, T, nH, d]);
  hooks.at(`${p}attn.hook_k`, gK, [B, T, nKV, d]);
  hooks.at(`${p}attn.hook_v`, gV, [B, T, nKV, d]);

  const gLn1 = new Float64Array(B * T * H);
  for (let tok = 0; tok < B * T; tok++) {
    addMatTVec(w.qW, gQ, tok * qd, qd, H, gLn1, tok * H);
    addMatTVec(w.kW, gK, tok * kd, kd, H, gLn1, tok * H);
    addMatTVec(w.vW, gV, tok * kd, kd, H, gLn1, tok * H);
  }
  hooks.at(`${p}ln1.hook_normalized`, gLn1, [B, T, H]);
  addRmsNormBackward(saved['hook_resid_pre'].data, w.inputNorm, gLn1, gX, B * T, H, cfg.rmsNormEps);
  hooks.at(`${p}hook_resid_pre`, gX, [B, T, H]);
  return gX;
}
