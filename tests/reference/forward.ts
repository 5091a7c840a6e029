// A deliberately simple, pure-TypeScript gpt-oss forward pass: the test oracle for the ONNX engine.
// Independent of engine/ on purpose (own safetensors reader, own MXFP4 dequantiser), written straight
// from shared/docs/gpt-oss.md. Weights are kept as float32 (BF16 and MXFP4 decode exactly to float32);
// activations and every dot product are float64, so this sits closer to exact than any float32 peer.
// Meant for tiny checkpoints: all experts are dequantised up front.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCheckpoint, toFloat32, dequantMxfp4, type RawTensor } from './safetensors.ts';

export interface ReferenceOutput {
  logits: Float32Array; // [T, V]
  logits64: Float64Array; // [T, V], unrounded (for finite differences)
  embed: Float32Array; // [T, H]
  residMid: Float32Array[]; // per layer [T, H]
  residPost: Float32Array[]; // per layer [T, H]
  pattern: Float32Array[]; // per layer [nH, T, T], sink column dropped
  sinkMass: Float32Array[]; // per layer [nH, T]
  routerLogits: Float32Array[]; // per layer [T, E]
  expertIndices: Int32Array[]; // per layer [T, k], descending logit order
  expertWeights: Float32Array[]; // per layer [T, k]
}

/** Zero this head's z (its slice of the o_proj input) at all positions. */
export interface ReferenceAblation {
  layer: number;
  head: number;
}

export interface ReferenceForwardOptions {
  ablateHeads?: ReferenceAblation[];
  /**
   * Added to a hook's value where the engine exposes it, by full hook name (e.g. blocks.1.attn.hook_q),
   * laid out as the engine's hook without the batch dim; ln_final.hook_normalized and hook_logits are
   * [1, H] / [1, V] at the last position. For finite differences of the engine's gradients.
   */
  add?: ReadonlyMap<string, Float64Array>;
}

type Adder = (x: Float64Array, name: string) => void;

interface Layer {
  sliding: boolean;
  ln1: Float32Array;
  wq: Float32Array; bq: Float32Array;
  wk: Float32Array; bk: Float32Array;
  wv: Float32Array; bv: Float32Array;
  wo: Float32Array; bo: Float32Array;
  sinks: Float32Array;
  ln2: Float32Array;
  wr: Float32Array; br: Float32Array;
  wGateUp: Float32Array; bGateUp: Float32Array; // [E, 2I, H] / [E, 2I], rows interleaved gate, up
  wDown: Float32Array; bDown: Float32Array; // [E, H, I] / [E, H]
}

export class ReferenceModel {
  readonly config: any;
  readonly hidden: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKv: number;
  readonly headDim: number;
  readonly vocab: number;
  readonly nExperts: number;
  readonly topK: number;
  readonly intermediate: number;
  readonly window: number;
  private readonly eps: number;
  private readonly limit: number;
  private readonly invFreq: Float64Array; // [d/2]
  private readonly concentration: number;
  private readonly embedW: Float32Array;
  private readonly normW: Float32Array;
  private readonly lmHead: Float32Array;
  private readonly layers: Layer[];

  constructor(config: any, tensors: Map<string, RawTensor>) {
    this.config = config;
    this.hidden = config.hidden_size;
    this.nLayers = config.num_hidden_layers;
    this.nHeads = config.num_attention_heads;
    this.nKv = config.num_key_value_heads ?? this.nHeads;
    this.headDim = config.head_dim ?? this.hidden / this.nHeads;
    this.vocab = config.vocab_size;
    this.nExperts = config.num_local_experts;
    this.topK = config.num_experts_per_tok ?? config.experts_per_token;
    this.intermediate = config.intermediate_size;
    this.window = config.sliding_window ?? 0;
    this.eps = config.rms_norm_eps ?? 1e-5;
    this.limit = config.swiglu_limit ?? 7.0;
    [this.invFreq, this.concentration] = ropeTables(config, this.headDim);

    const f = (name: string): Float32Array => {
      const t = tensors.get(name);
      if (!t) throw new Error(`reference: missing tensor ${name}`);
      return toFloat32(t);
    };
    const mx = (prefix: string): Float32Array => {
      const b = tensors.get(`${prefix}_blocks`);
      const s = tensors.get(`${prefix}_scales`);
      if (!b || !s) throw new Error(`reference: missing MXFP4 tensor ${prefix}`);
      return dequantMxfp4(b, s);
    };
    this.embedW = f('model.embed_tokens.weight');
    this.normW = f('model.norm.weight');
    this.lmHead = f('lm_head.weight');
    // Layer 0 is sliding, then alternating, unless layer_types says otherwise.
    const types: string[] | undefined = config.layer_types;
    this.layers = [];
    for (let l = 0; l < this.nLayers; l++) {
      const p = `model.layers.${l}.`;
      const sliding = types ? types[l] === 'sliding_attention' : l % 2 === 0;
      this.layers.push({
        sliding: sliding && this.window > 0,
        ln1: f(p + 'input_layernorm.weight'),
        wq: f(p + 'self_attn.q_proj.weight'), bq: f(p + 'self_attn.q_proj.bias'),
        wk: f(p + 'self_attn.k_proj.weight'), bk: f(p + 'self_attn.k_proj.bias'),
        wv: f(p + 'self_attn.v_proj.weight'), bv: f(p + 'self_attn.v_proj.bias'),
        wo: f(p + 'self_attn.o_proj.weight'), bo: f(p + 'self_attn.o_proj.bias'),
        sinks: f(p + 'self_attn.sinks'),
        ln2: f(p + 'post_attention_layernorm.weight'),
        wr: f(p + 'mlp.router.weight'), br: f(p + 'mlp.router.bias'),
        wGateUp: mx(p + 'mlp.experts.gate_up_proj'), bGateUp: f(p + 'mlp.experts.gate_up_proj_bias'),
        wDown: mx(p + 'mlp.experts.down_proj'), bDown: f(p + 'mlp.experts.down_proj_bias'),
      });
    }
    const expect = (what: string, got: number, want: number) => {
      if (got !== want) throw new Error(`reference: ${what} has ${got} values, expected ${want}`);
    };
    const H = this.hidden, I = this.intermediate, E = this.nExperts;
    expect('embed_tokens', this.embedW.length, this.vocab * H);
    expect('lm_head', this.lmHead.length, this.vocab * H);
    for (const L of this.layers) {
      expect('q_proj', L.wq.length, this.nHeads * this.headDim * H);
      expect('k_proj', L.wk.length, this.nKv * this.headDim * H);
      expect('gate_up_proj', L.wGateUp.length, E * 2 * I * H);
      expect('down_proj', L.wDown.length, E * H * I);
    }
  }

  forward(tokens: number[], opts: ReferenceForwardOptions = {}): ReferenceOutput {
    const T = tokens.length;
    const H = this.hidden, nH = this.nHeads, d = this.headDim, V = this.vocab;
    if (T === 0) throw new Error('reference: empty token list');
    const ablated = new Set<string>();
    for (const a of opts.ablateHeads ?? []) {
      if (a.layer < 0 || a.layer >= this.nLayers || a.head < 0 || a.head >= nH) {
        throw new Error(`reference: ablation out of range: layer ${a.layer} head ${a.head}`);
      }
      ablated.add(`${a.layer}:${a.head}`);
    }

    // No BOS: the stream starts at the given tokens.
    const x = new Float64Array(T * H);
    for (let t = 0; t < T; t++) {
      const id = tokens[t];
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`reference: token ${id} out of range`);
      for (let c = 0; c < H; c++) x[t * H + c] = this.embedW[id * H + c];
    }
    const addTo: Adder = (v, name) => {
      const a = opts.add?.get(name);
      if (!a) return;
      if (a.length !== v.length) throw new Error(`reference: add for ${name} has ${a.length} values, expected ${v.length}`);
      for (let i = 0; i < v.length; i++) v[i] += a[i];
    };
    addTo(x, 'hook_embed');
    const out: ReferenceOutput = {
      logits: new Float32Array(0), logits64: new Float64Array(0), embed: Float32Array.from(x),
      residMid: [], residPost: [], pattern: [], sinkMass: [],
      routerLogits: [], expertIndices: [], expertWeights: [],
    };
    const { cos, sin } = this.ropeCosSin(T);

    for (let l = 0; l < this.nLayers; l++) {
      const L = this.layers[l];
      const isAblated = (h: number) => ablated.has(`${l}:${h}`);
      const at: Adder = (v, name) => addTo(v, `blocks.${l}.${name}`);
      at(x, 'hook_resid_pre');
      const ln1 = rmsNorm(x, L.ln1, T, H, this.eps);
      at(ln1, 'ln1.hook_normalized');
      const attn = this.attention(L, ln1, T, cos, sin, isAblated, at, opts.add, l);
      for (let i = 0; i < x.length; i++) x[i] += attn.o[i];
      at(x, 'hook_resid_mid');
      out.residMid.push(Float32Array.from(x));
      out.pattern.push(attn.pattern);
      out.sinkMass.push(attn.sinkMass);

      const ln2 = rmsNorm(x, L.ln2, T, H, this.eps);
      at(ln2, 'ln2.hook_normalized');
      const moe = this.moe(L, ln2, T, at, (name) => opts.add?.get(`blocks.${l}.${name}`));
      at(moe.y, 'hook_mlp_out');
      for (let i = 0; i < x.length; i++) x[i] += moe.y[i];
      at(x, 'hook_resid_post');
      out.residPost.push(Float32Array.from(x));
      out.routerLogits.push(moe.routerLogits);
      out.expertIndices.push(moe.indices);
      out.expertWeights.push(moe.weights);
    }

    const final = rmsNorm(x, this.normW, T, H, this.eps);
    addTo(final.subarray((T - 1) * H), 'ln_final.hook_normalized');
    const logits = linear(final, this.lmHead, null, T, H, V);
    addTo(logits.subarray((T - 1) * V), 'hook_logits');
    out.logits64 = logits;
    out.logits = Float32Array.from(logits);
    return out;
  }

  /** cos/sin [T, d/2], both scaled by the YaRN concentration (so q.k scales by its square). */
  private ropeCosSin(T: number): { cos: Float64Array; sin: Float64Array } {
    const half = this.headDim / 2;
    const cos = new Float64Array(T * half), sin = new Float64Array(T * half);
    for (let p = 0; p < T; p++) {
      for (let i = 0; i < half; i++) {
        const a = p * this.invFreq[i];
        cos[p * half + i] = Math.cos(a) * this.concentration;
        sin[p * half + i] = Math.sin(a) * this.concentration;
      }
    }
    return { cos, sin };
  }

  private attention(
    L: Layer, t: Float64Array, T: number, cos: Float64Array, sin: Float64Array, isAblated: (h: number) => boolean,
    at: Adder = () => {}, adds?: ReadonlyMap<string, Float64Array>, layer = 0,
  ) {
    const H = this.hidden, nH = this.nHeads, nKv = this.nKv, d = this.headDim;
    const q = linear(t, L.wq, L.bq, T, H, nH * d);
    const k = linear(t, L.wk, L.bk, T, H, nKv * d);
    const v = linear(t, L.wv, L.bv, T, H, nKv * d);
    at(q, 'attn.hook_q');
    at(k, 'attn.hook_k');
    at(v, 'attn.hook_v');
    rope(q, T, nH, d, cos, sin);
    rope(k, T, nKv, d, cos, sin);
    at(q, 'attn.hook_rot_q');
    at(k, 'attn.hook_rot_k');
    const addScores = adds?.get(`blocks.${layer}.attn.hook_attn_scores`);
    const addPattern = adds?.get(`blocks.${layer}.attn.hook_pattern`);
    const addResult = adds?.get(`blocks.${layer}.attn.hook_result`);

    const pattern = new Float32Array(nH * T * T);
    const sinkMass = new Float32Array(nH * T);
    const z = new Float64Array(T * nH * d); // heads concatenated head-major: index h*d + c
    const scale = 1 / Math.sqrt(d);
    const group = nH / nKv;
    const s = new Float64Array(T);
    for (let h = 0; h < nH; h++) {
      const g = Math.floor(h / group); // GQA: consecutive query heads share a KV head
      const sink = L.sinks[h];
      for (let i = 0; i < T; i++) {
        // Visible keys: j <= i, and on sliding layers i - j < window.
        const j0 = L.sliding ? Math.max(0, i - this.window + 1) : 0;
        let m = sink;
        for (let j = j0; j <= i; j++) {
          let acc = 0;
          for (let c = 0; c < d; c++) acc += q[i * nH * d + h * d + c] * k[j * nKv * d + g * d + c];
          s[j] = acc * scale + (addScores ? addScores[(h * T + i) * T + j] : 0);
          if (s[j] > m) m = s[j];
        }
        // The sink is one extra softmax column, dropped before V: rows sum to 1 - sinkMass.
        let Z = Math.exp(sink - m);
        for (let j = j0; j <= i; j++) Z += Math.exp(s[j] - m);
        sinkMass[h * T + i] = Math.exp(sink - m) / Z;
        for (let j = j0; j <= i; j++) {
          const p = Math.exp(s[j] - m) / Z;
          pattern[(h * T + i) * T + j] = p;
          if (isAblated(h)) continue; // ablation zeroes z, but the pattern is still reported
          const pe = p + (addPattern ? addPattern[(h * T + i) * T + j] : 0);
          for (let c = 0; c < d; c++) z[i * nH * d + h * d + c] += pe * v[j * nKv * d + g * d + c];
        }
        // A pattern entry added outside the visible keys still multiplies its value row.
        if (addPattern && !isAblated(h)) {
          for (let j = 0; j < T; j++) {
            if (j >= j0 && j <= i) continue;
            const pe = addPattern[(h * T + i) * T + j];
            for (let c = 0; c < d; c++) z[i * nH * d + h * d + c] += pe * v[j * nKv * d + g * d + c];
          }
        }
      }
    }
    at(z, 'attn.hook_z');
    const o = linear(z, L.wo, L.bo, T, nH * d, H);
    // Per-head results sum into the output, so an addition to one head's result adds to the output.
    if (addResult) for (let p = 0; p < T; p++) for (let h = 0; h < nH; h++) for (let c = 0; c < H; c++) o[p * H + c] += addResult[(p * nH + h) * H + c];
    at(o, 'hook_attn_out');
    return { o, pattern, sinkMass };
  }

  private moe(L: Layer, t: Float64Array, T: number, at: Adder = () => {}, addOf: (name: string) => Float64Array | undefined = () => undefined) {
    const H = this.hidden, E = this.nExperts, K = this.topK, I = this.intermediate;
    const logits = linear(t, L.wr, L.br, T, H, E);
    at(logits, 'mlp.hook_router_logits');
    const addW = addOf('mlp.hook_expert_weights');
    const addPre = addOf('mlp.hook_pre');
    const addPost = addOf('mlp.hook_post');
    const addOut = addOf('mlp.hook_expert_out');
    const indices = new Int32Array(T * K);
    const weights = new Float32Array(T * K);
    const y = new Float64Array(T * H);
    const a = new Float64Array(I);
    for (let r = 0; r < T; r++) {
      const row = logits.subarray(r * E, (r + 1) * E);
      // Top-k on raw logits, descending; ties go to the lower index (stable sort).
      const order = Array.from({ length: E }, (_, e) => e).sort((p, q) => row[q] - row[p] || p - q);
      const chosen = order.slice(0, K);
      const m = row[chosen[0]];
      let Z = 0;
      for (const e of chosen) Z += Math.exp(row[e] - m);
      for (let n = 0; n < K; n++) {
        const e = chosen[n];
        const w = Math.exp(row[e] - m) / Z + (addW ? addW[r * K + n] : 0); // softmax over the k chosen logits only
        indices[r * K + n] = e;
        weights[r * K + n] = w;
        // Clamped SwiGLU; gate_up rows interleave: gate unit u = row 2u, up unit u = row 2u+1.
        for (let u = 0; u < I; u++) {
          let gate = dot(L.wGateUp, (e * 2 * I + 2 * u) * H, t, r * H, H) + L.bGateUp[e * 2 * I + 2 * u];
          let up = dot(L.wGateUp, (e * 2 * I + 2 * u + 1) * H, t, r * H, H) + L.bGateUp[e * 2 * I + 2 * u + 1];
          if (addPre) gate += addPre[(r * E + e) * I + u];
          gate = Math.min(gate, this.limit);
          up = Math.min(Math.max(up, -this.limit), this.limit);
          a[u] = (gate / (1 + Math.exp(-1.702 * gate))) * (up + 1) + (addPost ? addPost[(r * E + e) * I + u] : 0);
        }
        for (let c = 0; c < H; c++) {
          const yc = dot(L.wDown, (e * H + c) * I, a, 0, I) + L.bDown[e * H + c];
          y[r * H + c] += w * yc;
        }
      }
      // hook_expert_out sums over every expert: an addition to an unchosen expert's slice still adds.
      if (addOut) for (let e = 0; e < E; e++) for (let c = 0; c < H; c++) y[r * H + c] += addOut[(r * E + e) * H + c];
    }
    return { y, routerLogits: Float32Array.from(logits), indices, weights };
  }
}

/** Reads config.json plus model.safetensors (or the shards of model.safetensors.index.json). */
export function loadReferenceModel(dir: string): ReferenceModel {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  return new ReferenceModel(config, readCheckpoint(dir));
}

// ---------- small numeric helpers (float64 accumulation throughout) ----------

function dot(w: Float32Array, wOff: number, x: Float64Array, xOff: number, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += w[wOff + i] * x[xOff + i];
  return acc;
}

/** y[T, out] = x[T, in] W^T + b, with W stored [out, in] (PyTorch Linear layout). */
function linear(x: Float64Array, w: Float32Array, b: Float32Array | null, T: number, nIn: number, nOut: number) {
  const y = new Float64Array(T * nOut);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < nOut; o++) y[t * nOut + o] = dot(w, o * nIn, x, t * nIn, nIn) + (b ? b[o] : 0);
  }
  return y;
}

/** x * rsqrt(mean(x^2) + eps) * w: plain weight, not (1 + w). */
function rmsNorm(x: Float64Array, w: Float32Array, T: number, H: number, eps: number): Float64Array {
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let c = 0; c < H; c++) ss += x[t * H + c] * x[t * H + c];
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let c = 0; c < H; c++) y[t * H + c] = x[t * H + c] * r * w[c];
  }
  return y;
}

/** Half-split RoPE in place on [T, nHeads, d]: dim i pairs with dim i + d/2 (not interleaved). */
function rope(x: Float64Array, T: number, nHeads: number, d: number, cos: Float64Array, sin: Float64Array) {
  const half = d / 2;
  for (let p = 0; p < T; p++) {
    for (let h = 0; h < nHeads; h++) {
      const base = (p * nHeads + h) * d;
      for (let i = 0; i < half; i++) {
        const x1 = x[base + i], x2 = x[base + half + i];
        const c = cos[p * half + i], s = sin[p * half + i];
        x[base + i] = x1 * c - x2 * s;
        x[base + half + i] = x2 * c + x1 * s;
      }
    }
  }
}

/** YaRN inverse frequencies and concentration (plain RoPE, concentration 1, without rope_scaling). */
export function ropeTables(config: any, d: number): [Float64Array, number] {
  const theta: number = config.rope_theta ?? 10000;
  const half = d / 2;
  const invFreq = new Float64Array(half);
  const rs = config.rope_scaling;
  if (!rs || (rs.rope_type ?? rs.type) !== 'yarn') {
    for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(theta, (2 * i) / d);
    return [invFreq, 1];
  }
  const factor: number = rs.factor;
  const L0: number = rs.original_max_position_embeddings ?? config.initial_context_length;
  const corr = (beta: number) => (half * Math.log(L0 / (beta * 2 * Math.PI))) / Math.log(theta);
  let low = corr(rs.beta_fast ?? 32);
  let high = corr(rs.beta_slow ?? 1);
  if (rs.truncate !== false) {
    // HF's default (truncate true) rounds the correction range outward; gpt-oss sets truncate false.
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  if (low === high) high += 0.001;
  for (let i = 0; i < half; i++) {
    const freq = Math.pow(theta, (2 * i) / d);
    const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
    const mask = 1 - ramp; // 1 = keep the original (extrapolated) frequency
    invFreq[i] = (1 / (factor * freq)) * (1 - mask) + (1 / freq) * mask;
  }
  const concentration: number = rs.attention_factor ?? 0.1 * Math.log(factor) + 1;
  return [invFreq, concentration];
}
