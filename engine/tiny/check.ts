// Build-time check of a tiny model: a compact gpt-oss forward pass over exactly the values the
// checkpoint stores (BF16-rounded tensors, MXFP4-decoded experts), using sparse rows because planted
// weights are mostly zero. It follows shared/docs/gpt-oss.md step by step (float64 activations like the
// reference oracle). It serves only to measure the planted behaviours when a model is built; tests run
// the written files through the independent reference in tests/reference and through the engine.
import type { GptOssConfig } from '../config.ts';
import { dequantizeMxfp4, quantizeMxfp4 } from '../mxfp4.ts';
import { ropeInvFreq } from '../rope.ts';
import { f32ToBf16Bytes } from '../safetensors.ts';
import type { DenseTensor } from './build.ts';
import type { ForwardRequest, ForwardResult } from './evaluate.ts';

/** float32 -> the float32 value of its BF16 rounding (round to nearest even, as the writer stores it). */
export function roundBf16(x: Float32Array): Float32Array {
  const b = new Uint16Array(f32ToBf16Bytes(x).buffer);
  const bits = new Uint32Array(b.length);
  for (let i = 0; i < b.length; i++) bits[i] = b[i] << 16;
  return new Float32Array(bits.buffer);
}

/** The value a dense expert tensor holds after MXFP4; throws unless the round trip is exact. */
export function mxfp4RoundTrip(t: DenseTensor): Float32Array {
  const [E, rows, cols] = t.shape;
  const { blocks, scales } = quantizeMxfp4(t.data, E * rows, cols);
  const back = dequantizeMxfp4(blocks, scales, E * rows, cols);
  for (let i = 0; i < back.length; i++) {
    if (back[i] !== t.data[i]) {
      throw new Error(`${t.name}: MXFP4 cannot hold ${t.data[i]} exactly at flat index ${i} (stored ${back[i]})`);
    }
  }
  return back;
}

/** A dense expert tensor as MXFP4 stores it (rounded to a code times a power of two per 32-value block). */
function mxfp4Rounded(t: DenseTensor): Float32Array {
  const [E, rows, cols] = t.shape;
  const { blocks, scales } = quantizeMxfp4(t.data, E * rows, cols);
  return dequantizeMxfp4(blocks, scales, E * rows, cols);
}

/** Tensors as stored: experts through MXFP4 (with `exactExperts`, throws unless the round trip is
 *  exact, as the clean construction guarantees), everything else through BF16. */
export function storedValues(tensors: DenseTensor[], opts: { exactExperts: boolean } = { exactExperts: true }): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const t of tensors) {
    const expert = /\.mlp\.experts\.(gate_up_proj|down_proj)$/.test(t.name);
    out.set(t.name, !expert ? roundBf16(t.data) : opts.exactExperts ? mxfp4RoundTrip(t) : mxfp4Rounded(t));
  }
  return out;
}

/** Matrix [rows, cols] stored row-sparse when mostly zero (clean style), dense otherwise (realistic). */
class Sparse {
  private readonly dense: Float64Array | null = null;
  readonly ptr: Int32Array;
  readonly idx: Int32Array;
  readonly val: Float64Array;
  constructor(w: Float32Array, readonly rows: number, readonly cols: number, offset = 0) {
    let nnz = 0;
    for (let i = 0; i < rows * cols; i++) if (w[offset + i] !== 0) nnz++;
    if (nnz > 0.5 * rows * cols) {
      this.dense = Float64Array.from(w.subarray(offset, offset + rows * cols));
      nnz = 0;
    }
    this.ptr = new Int32Array(rows + 1);
    this.idx = new Int32Array(nnz);
    this.val = new Float64Array(nnz);
    let n = 0;
    for (let r = 0; r < rows; r++) {
      this.ptr[r] = n;
      for (let c = 0; c < cols; c++) {
        const x = w[offset + r * cols + c];
        if (x !== 0 && !this.dense) {
          this.idx[n] = c;
          this.val[n++] = x;
        }
      }
    }
    this.ptr[rows] = n;
    const nz: number[] = [];
    for (let r = 0; r < rows; r++) if (this.dense || this.ptr[r + 1] > this.ptr[r]) nz.push(r);
    this.nonEmpty = Int32Array.from(nz);
  }
  readonly nonEmpty: Int32Array;
  /** y[r] = sum_c W[r, c] x[xo + c] (+ b[r]) */
  apply(x: Float64Array, xo: number, y: Float64Array, yo: number, b?: Float32Array, bo = 0): void {
    if (b) for (let r = 0; r < this.rows; r++) y[yo + r] = b[bo + r];
    else y.fill(0, yo, yo + this.rows);
    const D = this.dense;
    if (D) {
      const C = this.cols;
      for (let r = 0; r < this.rows; r++) {
        let acc = 0;
        const base = r * C;
        for (let c = 0; c < C; c++) acc += D[base + c] * x[xo + c];
        y[yo + r] += acc;
      }
      return;
    }
    const nz = this.nonEmpty;
    for (let k = 0; k < nz.length; k++) {
      const r = nz[k];
      let acc = 0;
      for (let n = this.ptr[r]; n < this.ptr[r + 1]; n++) acc += this.val[n] * x[xo + this.idx[n]];
      y[yo + r] += acc;
    }
  }

  /** apply() on T consecutive vectors (x rows of length cols, y rows of length rows). A dense
   *  matrix is walked once for all of them, so each weight row is read from cache T times. */
  applyAll(x: Float64Array, T: number, y: Float64Array, b?: Float32Array): void {
    const D = this.dense, R = this.rows, C = this.cols;
    if (!D) {
      for (let t = 0; t < T; t++) this.apply(x, t * C, y, t * R, b);
      return;
    }
    for (let r = 0; r < R; r++) {
      const base = r * C, bias = b ? b[r] : 0;
      let t = 0;
      // four tokens per pass share each weight load
      for (; t + 4 <= T; t += 4) {
        const x0 = t * C, x1 = x0 + C, x2 = x1 + C, x3 = x2 + C;
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (let c = 0; c < C; c++) {
          const w = D[base + c];
          a0 += w * x[x0 + c];
          a1 += w * x[x1 + c];
          a2 += w * x[x2 + c];
          a3 += w * x[x3 + c];
        }
        y[t * R + r] = bias + a0;
        y[(t + 1) * R + r] = bias + a1;
        y[(t + 2) * R + r] = bias + a2;
        y[(t + 3) * R + r] = bias + a3;
      }
      for (; t < T; t++) {
        const xo = t * C;
        let acc = 0;
        for (let c = 0; c < C; c++) acc += D[base + c] * x[xo + c];
        y[t * R + r] = bias + acc;
      }
    }
  }
}

interface CheckLayer {
  sliding: boolean;
  ln1: Float32Array; ln2: Float32Array;
  q: Sparse; qB: Float32Array; k: Sparse; kB: Float32Array; v: Sparse; vB: Float32Array;
  o: Sparse; oB: Float32Array; sinks: Float32Array;
  /** heads whose o_proj columns are not all zero (the others cannot change the output) */
  live: boolean[];
  /** per head: the q dims that can be nonzero after RoPE (both dims of a pair), and the z dims o_proj reads */
  qDims: Int32Array[];
  zDims: Int32Array[];
  router: Sparse; routerB: Float32Array;
  gateUp: Sparse[]; gateUpB: Float32Array; down: Sparse[]; downB: Float32Array;
  /** experts whose down_proj weights and bias are not all zero (the others add nothing) */
  liveExpert: boolean[];
  /** per expert, the units whose gate or up row or bias is not all zero (the others are exactly 0) */
  liveUnits: Int32Array[];
}

export class CheckModel {
  private readonly layers: CheckLayer[] = [];
  private readonly embed: Float32Array;
  private readonly norm: Float32Array;
  private readonly lmHead: Sparse;
  private readonly invFreq: Float32Array;
  private readonly concentration: number;

  constructor(readonly config: GptOssConfig, w: Map<string, Float32Array>) {
    const { hiddenSize: H, numHeads: nH, numKvHeads: nKV, headDim: d, numExperts: E, intermediateSize: I, vocabSize: V } = config;
    const get = (name: string) => {
      const t = w.get(name);
      if (!t) throw new Error(`check: missing ${name}`);
      return t;
    };
    this.embed = get('model.embed_tokens.weight');
    this.norm = get('model.norm.weight');
    this.lmHead = new Sparse(get('lm_head.weight'), V, H);
    ({ invFreq: this.invFreq, concentration: this.concentration } = ropeInvFreq(config));
    for (let l = 0; l < config.numLayers; l++) {
      const p = `model.layers.${l}.`;
      const gu = get(`${p}mlp.experts.gate_up_proj`);
      const oW = get(`${p}self_attn.o_proj.weight`);
      const zDims = Array.from({ length: nH }, (_, h) => {
        const dims: number[] = [];
        for (let c = 0; c < d; c++) {
          for (let r = 0; r < H; r++) if (oW[r * nH * d + h * d + c] !== 0) { dims.push(c); break; }
        }
        return Int32Array.from(dims);
      });
      const live = zDims.map((z) => z.length > 0);
      const qW = get(`${p}self_attn.q_proj.weight`), qB = get(`${p}self_attn.q_proj.bias`);
      const used = (h: number, c: number) => {
        if (qB[h * d + c] !== 0) return true;
        for (let r = 0; r < H; r++) if (qW[(h * d + c) * H + r] !== 0) return true;
        return false;
      };
      const qDims = Array.from({ length: nH }, (_, h) => {
        const dims: number[] = [];
        for (let i = 0; i < d / 2; i++) if (used(h, i) || used(h, i + d / 2)) dims.push(i, i + d / 2);
        return Int32Array.from(dims);
      });
      const dn = get(`${p}mlp.experts.down_proj`);
      this.layers.push({
        sliding: config.layerTypes[l] === 'sliding_attention',
        ln1: get(`${p}input_layernorm.weight`), ln2: get(`${p}post_attention_layernorm.weight`),
        q: new Sparse(get(`${p}self_attn.q_proj.weight`), nH * d, H), qB: get(`${p}self_attn.q_proj.bias`),
        k: new Sparse(get(`${p}self_attn.k_proj.weight`), nKV * d, H), kB: get(`${p}self_attn.k_proj.bias`),
        v: new Sparse(get(`${p}self_attn.v_proj.weight`), nKV * d, H), vB: get(`${p}self_attn.v_proj.bias`),
        o: new Sparse(oW, H, nH * d), oB: get(`${p}self_attn.o_proj.bias`),
        sinks: get(`${p}self_attn.sinks`), live, qDims, zDims,
        router: new Sparse(get(`${p}mlp.router.weight`), E, H), routerB: get(`${p}mlp.router.bias`),
        gateUp: Array.from({ length: E }, (_, e) => new Sparse(gu, 2 * I, H, e * 2 * I * H)),
        gateUpB: get(`${p}mlp.experts.gate_up_proj_bias`),
        down: Array.from({ length: E }, (_, e) => new Sparse(dn, H, I, e * H * I)),
        downB: get(`${p}mlp.experts.down_proj_bias`),
        liveUnits: Array.from({ length: E }, (_, e) => {
          const b = get(`${p}mlp.experts.gate_up_proj_bias`);
          const units: number[] = [];
          for (let u = 0; u < I; u++) {
            let any = b[e * 2 * I + 2 * u] !== 0 || b[e * 2 * I + 2 * u + 1] !== 0;
            for (let c = 0; c < H && !any; c++) any = gu[(e * 2 * I + 2 * u) * H + c] !== 0 || gu[(e * 2 * I + 2 * u + 1) * H + c] !== 0;
            if (any) units.push(u);
          }
          return Int32Array.from(units);
        }),
        liveExpert: Array.from({ length: E }, (_, e) => {
          for (let i = 0; i < H * I; i++) if (dn[e * H * I + i] !== 0) return true;
          const b = get(`${p}mlp.experts.down_proj_bias`);
          for (let c = 0; c < H; c++) if (b[e * H + c] !== 0) return true;
          return false;
        }),
      });
    }
  }

  forward(req: ForwardRequest): ForwardResult {
    return this.run(req, 0, this.embedTokens(req.tokens));
  }

  /**
   * Answers a batch. Requests on the same tokens share the layers before their first intervention:
   * the unmodified run of each prompt is kept layer by layer and an ablated or steered run starts
   * from it (the same arithmetic, so the same numbers, at a fraction of the cost).
   */
  forwardAll(reqs: ForwardRequest[]): ForwardResult[] {
    const plain = new Map<string, Float64Array[]>();
    const plainRun = (tokens: number[]) => {
      const key = tokens.join(',');
      let snaps = plain.get(key);
      if (!snaps) {
        snaps = [];
        this.run({ tokens }, 0, this.embedTokens(tokens), snaps);
        plain.set(key, snaps);
      }
      return snaps;
    };
    return reqs.map((r) => {
      const first = Math.min(
        ...(r.ablateHeads ?? []).map((h) => h.layer), ...(r.ablateExperts ?? []).map((e) => e.layer),
        r.steer ? r.steer.layer : Infinity,
      );
      if (!Number.isFinite(first) || first === 0) return this.run(r, 0, this.embedTokens(r.tokens));
      return this.run(r, first, Float64Array.from(plainRun(r.tokens)[first]));
    });
  }

  private embedTokens(tokens: number[]): Float64Array {
    const H = this.config.hiddenSize;
    const x = new Float64Array(tokens.length * H);
    for (let t = 0; t < tokens.length; t++) for (let c = 0; c < H; c++) x[t * H + c] = this.embed[tokens[t] * H + c];
    return x;
  }

  /** The forward from the input of layer `start` (residual `x`, modified in place); `snapshots`
   *  receives a copy of the residual at the input of every layer. */
  private run(req: ForwardRequest, start: number, x: Float64Array, snapshots?: Float64Array[]): ForwardResult {
    const cfg = this.config;
    const { hiddenSize: H, numHeads: nH, numKvHeads: nKV, headDim: d, numExperts: E, intermediateSize: I, vocabSize: V } = cfg;
    const K = cfg.expertsPerToken;
    const tokens = req.tokens;
    const T = tokens.length;
    const heads = new Set((req.ablateHeads ?? []).map((h) => `${h.layer}.${h.head}`));
    const experts = new Set((req.ablateExperts ?? []).map((x) => `${x.layer}.${x.expert}`));
    const half = d / 2;
    const cos = new Float64Array(T * half), sin = new Float64Array(T * half);
    for (let p = 0; p < T; p++) {
      for (let i = 0; i < half; i++) {
        const a = Math.fround(p * this.invFreq[i]);
        cos[p * half + i] = Math.cos(a) * this.concentration;
        sin[p * half + i] = Math.sin(a) * this.concentration;
      }
    }
    let neurons: Float32Array | undefined;
    const t1 = new Float64Array(T * H);
    for (let l = start; l < cfg.numLayers; l++) {
      const L = this.layers[l];
      if (snapshots) snapshots[l] = Float64Array.from(x);
      if (req.steer && req.steer.layer === l) {
        const pos = req.steer.positions === 'all' ? [...Array(T).keys()] : [T - 1];
        for (const t of pos) for (let c = 0; c < H; c++) x[t * H + c] += req.steer.vector[c];
      }
      rmsNorm(x, L.ln1, T, H, cfg.rmsNormEps, t1);
      const q = new Float64Array(T * nH * d), k = new Float64Array(T * nKV * d), v = new Float64Array(T * nKV * d);
      L.q.applyAll(t1, T, q, L.qB);
      L.k.applyAll(t1, T, k, L.kB);
      L.v.applyAll(t1, T, v, L.vB);
      rope(q, T, nH, d, cos, sin);
      rope(k, T, nKV, d, cos, sin);
      const z = new Float64Array(T * nH * d);
      const s = new Float64Array(T);
      const scale = 1 / Math.sqrt(d);
      for (let h = 0; h < nH; h++) {
        if (!L.live[h] || heads.has(`${l}.${h}`)) continue;
        const g = Math.floor(h / (nH / nKV));
        for (let i = 0; i < T; i++) {
          const j0 = L.sliding ? Math.max(0, i - cfg.slidingWindow + 1) : 0;
          let m = L.sinks[h];
          const qd = L.qDims[h], zd = L.zDims[h];
          for (let j = j0; j <= i; j++) {
            let acc = 0;
            for (let n = 0; n < qd.length; n++) acc += q[(i * nH + h) * d + qd[n]] * k[(j * nKV + g) * d + qd[n]];
            s[j] = acc * scale;
            if (s[j] > m) m = s[j];
          }
          let Z = Math.exp(L.sinks[h] - m);
          for (let j = j0; j <= i; j++) {
            s[j] = Math.exp(s[j] - m);
            Z += s[j];
          }
          for (let j = j0; j <= i; j++) {
            const pr = s[j] / Z;
            for (let n = 0; n < zd.length; n++) z[(i * nH + h) * d + zd[n]] += pr * v[(j * nKV + g) * d + zd[n]];
          }
        }
      }
      const o = new Float64Array(T * H);
      L.o.applyAll(z, T, o, L.oB);
      for (let i = 0; i < T * H; i++) x[i] += o[i];

      rmsNorm(x, L.ln2, T, H, cfg.rmsNormEps, t1);
      const logits = new Float64Array(E);
      const h2 = new Float64Array(2 * I), a = new Float64Array(I), y = new Float64Array(H);
      const capture = req.captureNeurons && req.captureNeurons.layer === l ? req.captureNeurons.expert : -1;
      if (capture >= 0) neurons = new Float32Array(T * I);
      for (let t = 0; t < T; t++) {
        L.router.apply(t1, t * H, logits, 0, L.routerB);
        // top-k on the raw logits, descending, ties to the lower index
        const chosen: number[] = [];
        for (let n = 0; n < K; n++) {
          let best = -1;
          for (let e = 0; e < E; e++) if (!chosen.includes(e) && (best < 0 || logits[e] > logits[best])) best = e;
          chosen.push(best);
        }
        const mx = logits[chosen[0]];
        let Zs = 0;
        for (const e of chosen) Zs += Math.exp(logits[e] - mx);
        for (const e of chosen) {
          const wgt = Math.exp(logits[e] - mx) / Zs;
          if (!L.liveExpert[e] && e !== capture) continue;
          L.gateUp[e].apply(t1, t * H, h2, 0, L.gateUpB, e * 2 * I);
          a.fill(0); // a unit with zero gate row and bias has gate 0, so activation 0
          const units = L.liveUnits[e];
          for (let n = 0; n < units.length; n++) {
            const u = units[n];
            const gate = Math.min(h2[2 * u], cfg.swigluLimit);
            const up = Math.min(Math.max(h2[2 * u + 1], -cfg.swigluLimit), cfg.swigluLimit);
            a[u] = (gate / (1 + Math.exp(-1.702 * gate))) * (up + 1);
          }
          if (e === capture) for (let u = 0; u < I; u++) neurons![t * I + u] = a[u];
          if (experts.has(`${l}.${e}`)) continue;
          L.down[e].apply(a, 0, y, 0, L.downB, e * H);
          for (let c = 0; c < H; c++) x[t * H + c] += wgt * y[c];
        }
      }
    }
    rmsNorm(x, this.norm, T, H, cfg.rmsNormEps, t1);
    const out = new Float64Array(T * V);
    this.lmHead.applyAll(t1, T, out);
    const logits = Float32Array.from(out);
    return { logits, neurons };
  }
}

function rmsNorm(x: Float64Array, w: Float32Array, T: number, H: number, eps: number, y: Float64Array): void {
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let c = 0; c < H; c++) ss += x[t * H + c] * x[t * H + c];
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let c = 0; c < H; c++) y[t * H + c] = x[t * H + c] * r * w[c];
  }
}

function rope(x: Float64Array, T: number, nHeads: number, d: number, cos: Float64Array, sin: Float64Array): void {
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
