// The computational graph that edge attribution scores: senders write into the residual stream
// (token embeddings, each head's result, each layer's MoE output), receivers read it (each query
// head's q input, each KV head's k and v inputs, each layer's MoE input, the logits). An edge is a
// sender upstream of a receiver. Two things are computed per edge here: the gradient of the metric
// w.r.t. the receiver's own view of the residual stream (for EAP scores), and a forward in which
// chosen edges carry the corrupted run's sender output instead of the current one (to verify a circuit).
import { blockHook } from '../engine/hook-address.ts';
import type { GptOssModel } from '../engine/model.ts';
import type { Intervention } from '../engine/intervention.ts';
import type { Tensor } from '../engine/tensor.ts';
import { addMatTVec, addRmsNormBackward } from '../engine/backward/kernels.ts';

export type Sender = { kind: 'embed' } | { kind: 'head'; layer: number; head: number } | { kind: 'mlp'; layer: number };
export type Receiver =
  | { kind: 'q'; layer: number; head: number }
  | { kind: 'k' | 'v'; layer: number; kv: number }
  | { kind: 'mlp'; layer: number }
  | { kind: 'logits' };

export const senderLabel = (s: Sender): string => (s.kind === 'embed' ? 'embed' : s.kind === 'head' ? `L${s.layer}.H${s.head}` : `L${s.layer}.MLP`);
export const receiverLabel = (r: Receiver): string =>
  r.kind === 'logits' ? 'logits' : r.kind === 'mlp' ? `L${r.layer}.MLP` : r.kind === 'q' ? `L${r.layer}.H${r.head}.q` : `L${r.layer}.KV${r.kv}.${r.kind}`;
export const edgeLabel = (s: Sender, r: Receiver): string => `${senderLabel(s)}->${receiverLabel(r)}`;

/** Order in the forward: a sender feeds a receiver iff it comes first. */
const senderAt = (s: Sender, L: number) => (s.kind === 'embed' ? -1 : s.kind === 'head' ? s.layer + 0.25 : s.layer + 0.75);
const receiverAt = (r: Receiver, L: number) => (r.kind === 'logits' ? L : r.kind === 'mlp' ? r.layer + 0.5 : r.layer + 0.1);
export const feeds = (s: Sender, r: Receiver, L: number): boolean => senderAt(s, L) < receiverAt(r, L);

export function graphNodes(cfg: { numLayers: number; numHeads: number; numKvHeads: number }): { senders: Sender[]; receivers: Receiver[] } {
  const senders: Sender[] = [{ kind: 'embed' }];
  const receivers: Receiver[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    for (let h = 0; h < cfg.numHeads; h++) {
      senders.push({ kind: 'head', layer: l, head: h });
      receivers.push({ kind: 'q', layer: l, head: h });
    }
    for (let g = 0; g < cfg.numKvHeads; g++) receivers.push({ kind: 'k', layer: l, kv: g }, { kind: 'v', layer: l, kv: g });
    senders.push({ kind: 'mlp', layer: l });
    receivers.push({ kind: 'mlp', layer: l });
  }
  receivers.push({ kind: 'logits' });
  return { senders, receivers };
}

/** Hooks whose activations give every sender's output. */
export const senderHooks = (L: number): string[] => ['hook_embed', ...Array.from({ length: L }, (_, l) => [blockHook(l, 'attn.hook_result'), blockHook(l, 'hook_mlp_out')]).flat()];

/** A sender's output [B, T, H] from a run's captured hooks. */
export function senderOutput(s: Sender, cache: Map<string, Tensor>, nH: number): Float32Array {
  if (s.kind === 'embed') return cache.get('hook_embed')!.data;
  if (s.kind === 'mlp') return cache.get(blockHook(s.layer, 'hook_mlp_out'))!.data;
  const r = cache.get(blockHook(s.layer, 'attn.hook_result'))!;
  const H = r.dims[3];
  const tokens = r.data.length / (nH * H);
  const out = new Float32Array(tokens * H);
  for (let t = 0; t < tokens; t++) out.set(r.data.subarray((t * nH + s.head) * H, (t * nH + s.head + 1) * H), t * H);
  return out;
}

/** Gradient hooks and captured activations the receivers' residual-view gradients are built from. */
export function receiverGradientHooks(L: number): { grads: string[]; capture: string[] } {
  const grads = ['ln_final.hook_normalized'];
  const capture = [blockHook(L - 1, 'hook_resid_post')];
  for (let l = 0; l < L; l++) {
    grads.push(blockHook(l, 'attn.hook_q'), blockHook(l, 'attn.hook_k'), blockHook(l, 'attn.hook_v'), blockHook(l, 'ln2.hook_normalized'));
    capture.push(blockHook(l, 'hook_resid_pre'), blockHook(l, 'hook_resid_mid'));
  }
  return { grads, capture };
}

/**
 * d metric / d (the residual stream as receiver r alone reads it), [B, T, H]: the gradient at r's
 * input (q/k/v slice, MoE input, final norm input) taken back through its RMSNorm only.
 */
export function receiverGradient(
  model: GptOssModel, r: Receiver, grads: Map<string, Tensor>, cache: Map<string, Tensor>, lengths: readonly number[],
): Float64Array {
  const cfg = model.config;
  const { hiddenSize: H, headDim: d, numHeads: nH, numKvHeads: nKV, numLayers: L, rmsNormEps: eps } = cfg;
  if (r.kind === 'logits') {
    const g = grads.get('ln_final.hook_normalized')!;
    const x = cache.get(blockHook(L - 1, 'hook_resid_post'))!;
    const [B, T] = x.dims;
    const out = new Float64Array(B * T * H);
    const un = model.unembedWeights();
    for (let b = 0; b < B; b++) {
      const t = lengths[b] - 1;
      const gx = new Float64Array(H);
      addRmsNormBackward(x.data.subarray((b * T + t) * H, (b * T + t + 1) * H), un.finalNorm, Float64Array.from(g.data.subarray(b * H, (b + 1) * H)), gx, 1, H, eps);
      out.set(gx, (b * T + t) * H);
    }
    return out;
  }
  const w = model.attentionWeights(r.layer);
  if (r.kind === 'mlp') {
    const x = cache.get(blockHook(r.layer, 'hook_resid_mid'))!;
    const out = new Float64Array(x.data.length);
    addRmsNormBackward(x.data, w.postNorm, Float64Array.from(grads.get(blockHook(r.layer, 'ln2.hook_normalized'))!.data), out, x.data.length / H, H, eps);
    return out;
  }
  const x = cache.get(blockHook(r.layer, 'hook_resid_pre'))!;
  const tokens = x.data.length / H;
  const [hook, W, heads, index] = r.kind === 'q' ? ['attn.hook_q', w.qW, nH, r.head] as const : [r.kind === 'k' ? 'attn.hook_k' : 'attn.hook_v', r.kind === 'k' ? w.kW : w.vW, nKV, r.kv] as const;
  const g = grads.get(blockHook(r.layer, hook))!.data;
  const gLn = new Float64Array(tokens * H);
  const rows = W.subarray(index * d * H, (index + 1) * d * H);
  for (let t = 0; t < tokens; t++) addMatTVec(rows, g, (t * heads + index) * d, d, H, gLn, t * H);
  const out = new Float64Array(tokens * H);
  addRmsNormBackward(x.data, w.inputNorm, gLn, out, tokens, H, eps);
  return out;
}

function rmsNormRows(x: Float64Array | Float32Array, w: Float32Array, rows: number, H: number, eps: number): Float32Array {
  const y = new Float32Array(rows * H);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[r * H + i] * x[r * H + i];
    const inv = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) y[r * H + i] = x[r * H + i] * inv * w[i];
  }
  return y;
}

const full = { data: new Float32Array([1]), dims: [1] };

/**
 * Logits [B, 1, V] of the clean prompts where every edge not in `kept` carries the corrupted run's
 * sender output: each receiver reads resid - sum over its dropped senders of (current - corrupted).
 * Two engine passes per layer (attention with the receivers' q/k/v, then the MoE with its input).
 */
export async function runWithEdges(
  model: GptOssModel, ids: number[][], corrupted: Map<string, Float32Array>, kept: ReadonlySet<string>,
  signal?: AbortSignal,
): Promise<Tensor> {
  const cfg = model.config;
  const { numLayers: L, numHeads: nH, numKvHeads: nKV, headDim: d, hiddenSize: H, rmsNormEps: eps } = cfg;
  const { senders } = graphNodes(cfg);
  const current = new Map<string, Float32Array>();
  let x = (await model.run(ids, { endLayer: 0, capture: ['hook_embed'], signal })).resid;
  const [B, T] = x.dims;
  const tokens = B * T;
  // Sum over the senders computed so far of (current - corrupted): every receiver from here on sees them all.
  const allDelta = new Float64Array(tokens * H);
  const known = (label: string, out: Float32Array) => {
    current.set(label, out);
    const cor = corrupted.get(label)!;
    for (let i = 0; i < allDelta.length; i++) allDelta[i] += out[i] - cor[i];
  };
  known('embed', x.data);
  // resid - sum over dropped senders of delta; written as resid - all + kept when few edges are kept.
  const inputOf = (base: Float32Array, r: Receiver): Float64Array => {
    const upstream = senders.filter((s) => feeds(s, r, L));
    const keptHere = upstream.filter((s) => kept.has(edgeLabel(s, r)));
    const inp = Float64Array.from(base);
    const sub = (s: Sender, sign: number) => {
      const cur = current.get(senderLabel(s))!;
      const cor = corrupted.get(senderLabel(s))!;
      for (let i = 0; i < inp.length; i++) inp[i] -= sign * (cur[i] - cor[i]);
    };
    if (keptHere.length < upstream.length / 2) {
      for (let i = 0; i < inp.length; i++) inp[i] -= allDelta[i];
      for (const s of keptHere) sub(s, -1);
    } else {
      for (const s of upstream) if (!kept.has(edgeLabel(s, r))) sub(s, 1);
    }
    return inp;
  };
  for (let l = 0; l < L; l++) {
    const w = model.attentionWeights(l);
    const proj = (r: Receiver, W: Float32Array, bias: Float32Array, index: number, heads: number, into: Float32Array) => {
      const ln = rmsNormRows(inputOf(x.data, r), w.inputNorm, tokens, H, eps);
      for (let t = 0; t < tokens; t++) {
        for (let c = 0; c < d; c++) {
          const o = index * d + c;
          let s = bias[o];
          for (let i = 0; i < H; i++) s += W[o * H + i] * ln[t * H + i];
          into[(t * heads + index) * d + c] = s;
        }
      }
    };
    const q = new Float32Array(tokens * nH * d);
    const k = new Float32Array(tokens * nKV * d);
    const v = new Float32Array(tokens * nKV * d);
    for (let h = 0; h < nH; h++) proj({ kind: 'q', layer: l, head: h }, w.qW, w.qB, h, nH, q);
    for (let g = 0; g < nKV; g++) {
      proj({ kind: 'k', layer: l, kv: g }, w.kW, w.kB, g, nKV, k);
      proj({ kind: 'v', layer: l, kv: g }, w.vW, w.vB, g, nKV, v);
    }
    const qkv: Intervention[] = [
      { hook: blockHook(l, 'attn.hook_q'), mask: full, value: { data: q, dims: [B, T, nH, d] } },
      { hook: blockHook(l, 'attn.hook_k'), mask: full, value: { data: k, dims: [B, T, nKV, d] } },
      { hook: blockHook(l, 'attn.hook_v'), mask: full, value: { data: v, dims: [B, T, nKV, d] } },
    ];
    const a = await model.run(ids, { startLayer: l, startResid: x, endLayer: l + 1, interventions: qkv, capture: [blockHook(l, 'attn.hook_result'), blockHook(l, 'hook_resid_mid')], signal });
    for (let h = 0; h < nH; h++) known(`L${l}.H${h}`, senderOutput({ kind: 'head', layer: l, head: h }, a.cache, nH));
    const ln2 = rmsNormRows(inputOf(a.cache.get(blockHook(l, 'hook_resid_mid'))!.data, { kind: 'mlp', layer: l }), w.postNorm, tokens, H, eps);
    const m = await model.run(ids, {
      startLayer: l, startResid: x, endLayer: l + 1, signal, capture: [blockHook(l, 'hook_mlp_out')],
      interventions: [...qkv, { hook: blockHook(l, 'ln2.hook_normalized'), mask: full, value: { data: ln2, dims: [B, T, H] } }],
    });
    known(`L${l}.MLP`, m.cache.get(blockHook(l, 'hook_mlp_out'))!.data);
    x = m.resid;
  }
  const lengths = ids.map((r) => r.length);
  const inp = inputOf(x.data, { kind: 'logits' });
  const lastRows = new Float64Array(B * H);
  for (let b = 0; b < B; b++) lastRows.set(inp.subarray((b * T + lengths[b] - 1) * H, (b * T + lengths[b]) * H), b * H);
  const lnf = rmsNormRows(lastRows, model.unembedWeights().finalNorm, B, H, eps);
  const out = await model.run(ids, {
    startLayer: L, startResid: x, logits: 'last', signal,
    interventions: [{ hook: 'ln_final.hook_normalized', mask: full, value: { data: lnf, dims: [B, 1, H] } }],
  });
  return out.logits!;
}
