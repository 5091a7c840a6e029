// Hand-built weights of gpt-oss-tiny: the exact gpt-oss architecture with circuits planted by
// construction (see shared/docs/planted-model.md). Everything is made in float32 here; the checkpoint
// writer stores it as BF16, with experts in MXFP4 (every expert weight is chosen so MXFP4 holds it
// exactly).
//
// The residual stream is a set of named subspaces (token codes, previous-token codes, flags, a
// constant, output slots read by the unembedding), laid out in a logical basis and then scattered
// over the hidden dimensions by a seeded signed permutation. Attention heads match content on the 16
// lowest-frequency RoPE pairs (which barely turn over a short prompt) and find the previous token
// with constant q/k on the 8 highest-frequency pairs; sinks are thresholds between "match" and "no
// match". Experts read class flags through the router.
import { parseConfig, type GptOssConfig } from '../config.ts';
import { Rng } from '../rng.ts';
import { ropeInvFreq } from '../rope.ts';
import { gptOssConfigJson } from '../write-checkpoint.ts';
import type { TinySize } from './manifest.ts';
import { buildVocabulary, NAMES, LETTERS, NUMBERS, PAD_TOKEN, EOS_TOKEN, type Vocabulary } from './vocab.ts';

export interface SizeSpec {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  experts: number;
  topK: number;
  intermediate: number;
  window: number;
  nameMovers: number;
}

export const SIZES: Record<TinySize, SizeSpec> = {
  'tiny-s': { hidden: 256, layers: 4, heads: 8, kvHeads: 4, experts: 8, topK: 2, intermediate: 32, window: 32, nameMovers: 1 },
  'tiny-m': { hidden: 256, layers: 8, heads: 16, kvHeads: 4, experts: 16, topK: 4, intermediate: 64, window: 32, nameMovers: 3 },
};

export const HEAD_DIM = 64;

// ---------- the residual stream ----------

/** Logical residual subspaces, in order. */
export const SUBSPACES: readonly (readonly [string, number])[] = [
  ['const', 1],
  ['flag_name', 1], ['flag_letter', 1], ['flag_number', 1], ['flag_math', 1], ['flag_code', 1],
  ['sentiment', 1],
  ['tok_name', NAMES.length], ['tok_letter', LETTERS.length], ['tok_number', NUMBERS.length], ['tok_misc', 32],
  ['prev_name', NAMES.length], ['prev_letter', LETTERS.length],
  ['dup_name', NAMES.length], ['dup_flag', 1],
  ['sinh_name', NAMES.length],
  ['out_name', NAMES.length], ['out_letter', LETTERS.length], ['out_number', NUMBERS.length], ['out_sentiment', 1],
  ['domain_poly', 1], ['domain_math', 1], ['domain_code', 1],
];

export class Layout {
  readonly offset = new Map<string, number>();
  readonly size = new Map<string, number>();
  readonly logical: number;
  /** physical dim and sign of each logical axis */
  readonly dim: Int32Array;
  readonly sign: Float32Array;

  constructor(readonly hidden: number, rng: Rng) {
    let o = 0;
    for (const [name, n] of SUBSPACES) {
      this.offset.set(name, o);
      this.size.set(name, n);
      o += n;
    }
    this.logical = o;
    if (o > hidden) throw new Error(`tiny layout needs ${o} residual dims, hidden size is ${hidden}`);
    const dims = rng.shuffle(Array.from({ length: hidden }, (_, i) => i)).slice(0, o);
    this.dim = Int32Array.from(dims);
    this.sign = Float32Array.from({ length: o }, () => (rng.next() < 0.5 ? -1 : 1));
  }

  /** logical index of axis i of a subspace */
  index(name: string, i = 0): number {
    const off = this.offset.get(name);
    const n = this.size.get(name);
    if (off === undefined || n === undefined) throw new Error(`unknown residual subspace ${name}`);
    if (i < 0 || i >= n) throw new Error(`residual subspace ${name} has ${n} axes, asked for ${i}`);
    return off + i;
  }

  /** physical dim and sign of axis i of a subspace */
  at(name: string, i = 0): { p: number; s: number } {
    const l = this.index(name, i);
    return { p: this.dim[l], s: this.sign[l] };
  }

  /** unit vector (physical basis) of axis i of a subspace */
  unit(name: string, i = 0): Float32Array {
    const v = new Float32Array(this.hidden);
    const { p, s } = this.at(name, i);
    v[p] = s;
    return v;
  }

  describe(): Record<string, { dims: number[]; signs: number[] }> {
    const out: Record<string, { dims: number[]; signs: number[] }> = {};
    for (const [name, n] of SUBSPACES) {
      const dims: number[] = [], signs: number[] = [];
      for (let i = 0; i < n; i++) {
        const { p, s } = this.at(name, i);
        dims.push(p);
        signs.push(s);
      }
      out[name] = { dims, signs };
    }
    return out;
  }
}

// ---------- magnitudes (numbers checked on the written checkpoint by the tests) ----------

/** Embedding: constant, one-hot token codes, class flags, sentiment. The constant dominates so the
 *  residual norm is about sqrt(hidden) and RMSNorm is close to the identity. */
export const EMBED = { constant: 15, code: 4, flag: 2, sentiment: 4 };
/** Previous-token heads: bias-only q/k amplitude per high-frequency pair, sink at 7.55 pair scores. */
const PT_AMPLITUDE = 8;
const PT_SINK_PAIRS = 7.55;
/** Content-matching heads: score of a match (no match scores 0); the sink sits at half of it. */
const MATCH_SCORE = 24;
/** Value-bias flag written by the duplicate-token head when it finds a match. */
const DUP_FLAG = 4;
/** Output gains (value -> output slot) and unembedding gains. */
const GAIN = { nameMoverTotal: 2.25, induction: 2, sentiment: 8 };
const UNEMBED = { name: 1.25, letter: 1.25, number: 1.5, sentiment: 1.5 };
/** Router: a planted expert's logit is +ROUTER when its class flag is on, -ROUTER when off. */
const ROUTER = 6;

// ---------- where the roles live ----------

export interface HeadLoc {
  layer: number;
  head: number;
}

export interface Plan {
  ioi: { previousToken: HeadLoc; duplicateToken: HeadLoc; sInhibition: HeadLoc; nameMovers: HeadLoc[] };
  induction: { previousToken: HeadLoc; inductionHead: HeadLoc };
  sentiment: { reader: HeadLoc };
  /** units[n] is the neuron mapping number n to n + 1 (n = 0..18) */
  successor: { layer: number; expert: number; units: number[] };
  entanglement: { layer: number; expert: number; poly: number; mathOnly: number[]; codeOnly: number[] };
  /** the KV group of each planted head (GQA: one role per group) */
  group: Map<string, number>;
}

const key = (h: HeadLoc) => `${h.layer}.${h.head}`;

/** Random placement of every role respecting the circuit's layer order and GQA groups. */
export function samplePlan(spec: SizeSpec, rng: Rng): Plan {
  const L = spec.layers;
  const gs = spec.heads / spec.kvHeads;
  for (let attempt = 0; attempt < 10_000; attempt++) {
    let pt: number, dup: number, sinh: number, nms: number[];
    if (L === 4) {
      [pt, dup, sinh] = [0, 1, 2];
      nms = Array.from({ length: spec.nameMovers }, () => 3);
    } else {
      // pt < dup < s-inhibition, leaving at least two later layers for the name movers.
      [pt, dup, sinh] = rng.shuffle(Array.from({ length: L - 2 }, (_, i) => i)).slice(0, 3).sort((a, b) => a - b);
      nms = Array.from({ length: spec.nameMovers }, () => sinh + 1 + rng.int(L - 1 - sinh));
    }
    const indPt = rng.int(L - 1);
    const indHead = indPt + 1 + rng.int(L - 1 - indPt);
    const reader = rng.int(L);
    const roles: { name: string; layer: number }[] = [
      { name: 'ioi.pt', layer: pt }, { name: 'ioi.dup', layer: dup }, { name: 'ioi.sinh', layer: sinh },
      ...nms.map((layer, i) => ({ name: `ioi.nm${i}`, layer })),
      { name: 'ind.pt', layer: indPt }, { name: 'ind.head', layer: indHead }, { name: 'sent.reader', layer: reader },
    ];
    const perLayer = new Map<number, typeof roles>();
    for (const r of roles) perLayer.set(r.layer, [...(perLayer.get(r.layer) ?? []), r]);
    if ([...perLayer.values()].some((rs) => rs.length > spec.kvHeads)) continue;
    const loc = new Map<string, HeadLoc>();
    const group = new Map<string, number>();
    for (const [layer, rs] of perLayer) {
      const groups = rng.shuffle(Array.from({ length: spec.kvHeads }, (_, g) => g));
      rs.forEach((r, i) => {
        const h = { layer, head: groups[i] * gs + rng.int(gs) };
        loc.set(r.name, h);
        group.set(key(h), groups[i]);
      });
    }
    const sLayer = rng.int(L);
    const sExpert = rng.int(spec.experts);
    const eLayer = rng.int(L);
    let eExpert = rng.int(spec.experts);
    while (eLayer === sLayer && eExpert === sExpert) eExpert = rng.int(spec.experts);
    const sUnits = rng.shuffle(Array.from({ length: spec.intermediate }, (_, u) => u)).slice(0, NUMBERS.length - 1);
    const eUnits = rng.shuffle(Array.from({ length: spec.intermediate }, (_, u) => u)).slice(0, 7);
    return {
      ioi: {
        previousToken: loc.get('ioi.pt')!, duplicateToken: loc.get('ioi.dup')!, sInhibition: loc.get('ioi.sinh')!,
        nameMovers: nms.map((_, i) => loc.get(`ioi.nm${i}`)!),
      },
      induction: { previousToken: loc.get('ind.pt')!, inductionHead: loc.get('ind.head')! },
      sentiment: { reader: loc.get('sent.reader')! },
      successor: { layer: sLayer, expert: sExpert, units: sUnits },
      entanglement: { layer: eLayer, expert: eExpert, poly: eUnits[0], mathOnly: eUnits.slice(1, 4), codeOnly: eUnits.slice(4, 7) },
      group,
    };
  }
  throw new Error('could not place the planted roles (too many roles per layer for the KV groups)');
}

// ---------- the model ----------

export interface DenseTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface Construction {
  size: TinySize;
  seed: number;
  spec: SizeSpec;
  config: GptOssConfig;
  configJson: Record<string, unknown>;
  vocab: Vocabulary;
  layout: Layout;
  plan: Plan;
  /** HF names; experts dense ([E, 2I, H] interleaved gate/up and [E, H, I]) as the writer takes them. */
  tensors: DenseTensor[];
}

export function construct(size: TinySize, seed: number): Construction {
  const spec = SIZES[size];
  if (!spec) throw new Error(`unknown tiny model size "${size}"; valid: ${Object.keys(SIZES).join(', ')}`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be a non-negative integer, got ${seed}`);
  const rng = new Rng(seed);
  const vocab = buildVocabulary();
  const V = vocab.words.length;
  const H = spec.hidden, d = HEAD_DIM, nH = spec.heads, nKV = spec.kvHeads, E = spec.experts, I = spec.intermediate;
  const configJson = gptOssConfigJson({
    hidden_size: H,
    intermediate_size: I,
    num_hidden_layers: spec.layers,
    num_attention_heads: nH,
    num_key_value_heads: nKV,
    head_dim: d,
    vocab_size: V,
    num_local_experts: E,
    num_experts_per_tok: spec.topK,
    sliding_window: spec.window,
    eos_token_id: vocab.id.get(EOS_TOKEN)!,
    pad_token_id: vocab.id.get(PAD_TOKEN)!,
  });
  const config = parseConfig(configJson, `${size} config`);
  const { invFreq, concentration } = ropeInvFreq(config);
  const Z = (concentration * concentration) / Math.sqrt(d); // score per unit of q.k on an unrotated pair

  const layout = new Layout(H, rng);
  const plan = samplePlan(spec, rng);
  const gs = nH / nKV;

  const tensors: DenseTensor[] = [];
  const add = (name: string, shape: number[], data?: Float32Array) => {
    const t = { name, shape, data: data ?? new Float32Array(shape.reduce((a, b) => a * b, 1)) };
    tensors.push(t);
    return t.data;
  };
  const ones = (n: number) => new Float32Array(n).fill(1);

  // Embedding and unembedding.
  const embed = add('model.embed_tokens.weight', [V, H]);
  const lmHead = add('lm_head.weight', [V, H]);
  const put = (W: Float32Array, row: number, name: string, i: number, value: number) => {
    const { p, s } = layout.at(name, i);
    W[row * H + p] += s * value;
  };
  const miscRng = new Rng(seed ^ 0x5bd1e995);
  for (let t = 0; t < V; t++) {
    put(embed, t, 'const', 0, EMBED.constant);
    const cls = vocab.classOf[t];
    const w = vocab.words[t];
    if (cls === 'name') {
      const n = NAMES.indexOf(w as (typeof NAMES)[number]);
      put(embed, t, 'tok_name', n, EMBED.code);
      put(embed, t, 'flag_name', 0, EMBED.flag);
      put(lmHead, t, 'out_name', n, UNEMBED.name);
    } else if (cls === 'letter') {
      const n = LETTERS.indexOf(w);
      put(embed, t, 'tok_letter', n, EMBED.code);
      put(embed, t, 'flag_letter', 0, EMBED.flag);
      put(lmHead, t, 'out_letter', n, UNEMBED.letter);
    } else if (cls === 'number') {
      const n = NUMBERS.indexOf(w);
      put(embed, t, 'tok_number', n, EMBED.code);
      put(embed, t, 'flag_number', 0, EMBED.flag);
      put(lmHead, t, 'out_number', n, UNEMBED.number);
    } else {
      // Every other word: a random code of norm 4 in the shared "misc" subspace, plus class features.
      const g = miscRng.normals(32);
      const norm = Math.hypot(...g);
      for (let i = 0; i < 32; i++) put(embed, t, 'tok_misc', i, (EMBED.code * g[i]) / norm);
      if (cls === 'positive' || cls === 'negative') {
        const sgn = cls === 'positive' ? 1 : -1;
        put(embed, t, 'sentiment', 0, sgn * EMBED.sentiment);
        put(lmHead, t, 'out_sentiment', 0, sgn * UNEMBED.sentiment);
      }
      if (cls === 'math') put(embed, t, 'flag_math', 0, EMBED.flag);
      if (cls === 'code') put(embed, t, 'flag_code', 0, EMBED.flag);
    }
  }
  add('model.norm.weight', [H], ones(H));

  // Attention: content slot m of a head -> one of the 32 dims of the lowest-frequency pairs 16..31.
  const slot = (m: number) => (m < 16 ? 0 : 32) + (31 - (m % 16));
  // Code magnitude a planted head expects after RMSNorm (the residual norm stays near sqrt(H)).
  const c = EMBED.code;
  const codeWeight = Math.sqrt(MATCH_SCORE / (Z * c * c)); // q and k weight on a code read from the residual

  for (let l = 0; l < spec.layers; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [H], ones(H));
    add(`${p}post_attention_layernorm.weight`, [H], ones(H));
    const qW = add(`${p}self_attn.q_proj.weight`, [nH * d, H]);
    const qB = add(`${p}self_attn.q_proj.bias`, [nH * d]);
    const kW = add(`${p}self_attn.k_proj.weight`, [nKV * d, H]);
    const kB = add(`${p}self_attn.k_proj.bias`, [nKV * d]);
    const vW = add(`${p}self_attn.v_proj.weight`, [nKV * d, H]);
    const vB = add(`${p}self_attn.v_proj.bias`, [nKV * d]);
    const oW = add(`${p}self_attn.o_proj.weight`, [H, nH * d]);
    add(`${p}self_attn.o_proj.bias`, [H]);
    const sinks = add(`${p}self_attn.sinks`, [nH]);

    const groupOf = (h: HeadLoc) => {
      const g = plan.group.get(key(h));
      if (g === undefined || Math.floor(h.head / gs) !== g) throw new Error(`internal: head ${key(h)} has no group`);
      return g;
    };
    // q row (h*d + dim) reads residual axis; k/v rows (g*d + dim); o column (h*d + dim) writes an axis.
    const q = (h: number, dim: number, name: string, i: number, w: number) => put(qW, h * d + dim, name, i, w);
    const k = (g: number, dim: number, name: string, i: number, w: number) => put(kW, g * d + dim, name, i, w);
    const v = (g: number, dim: number, name: string, i: number, w: number) => put(vW, g * d + dim, name, i, w);
    const o = (h: number, dim: number, name: string, i: number, w: number) => {
      const { p: r, s } = layout.at(name, i);
      oW[r * nH * d + h * d + dim] += s * w;
    };

    const previousToken = (loc: HeadLoc, from: string, to: string) => {
      const g = groupOf(loc), h = loc.head;
      for (let i = 0; i < 8; i++) {
        qB[h * d + i] = PT_AMPLITUDE * Math.cos(-invFreq[i]);
        qB[h * d + 32 + i] = PT_AMPLITUDE * Math.sin(-invFreq[i]);
        kB[g * d + i] = PT_AMPLITUDE;
      }
      sinks[h] = PT_SINK_PAIRS * Z * PT_AMPLITUDE * PT_AMPLITUDE;
      for (let i = 0; i < layout.size.get(from)!; i++) {
        v(g, i, from, i, 1);
        o(h, i, to, i, 1);
      }
    };
    /** q = own code, k = code of the previous token (found by an earlier previous-token head). */
    const matchPrevious = (loc: HeadLoc, qFrom: string, kFrom: string) => {
      const g = groupOf(loc), h = loc.head;
      for (let i = 0; i < layout.size.get(qFrom)!; i++) {
        q(h, slot(i), qFrom, i, codeWeight);
        k(g, slot(i), kFrom, i, codeWeight);
      }
      sinks[h] = MATCH_SCORE / 2;
    };

    const { ioi, induction, sentiment } = plan;
    if (ioi.previousToken.layer === l) previousToken(ioi.previousToken, 'tok_name', 'prev_name');
    if (induction.previousToken.layer === l) previousToken(induction.previousToken, 'tok_letter', 'prev_letter');
    if (ioi.duplicateToken.layer === l) {
      // Finds the token after an earlier copy of the current name; copies that earlier name (its
      // previous-token code) and raises a "duplicate" flag through the value bias.
      const loc = ioi.duplicateToken, g = groupOf(loc), h = loc.head;
      matchPrevious(loc, 'tok_name', 'prev_name');
      for (let i = 0; i < NAMES.length; i++) {
        v(g, i, 'prev_name', i, 1);
        o(h, i, 'dup_name', i, 1);
      }
      vB[g * d + NAMES.length] = DUP_FLAG;
      o(h, NAMES.length, 'dup_flag', 0, 1);
    }
    if (ioi.sInhibition.layer === l) {
      // Constant query, key = duplicate flag: moves the duplicated name to later positions.
      const loc = ioi.sInhibition, g = groupOf(loc), h = loc.head;
      const kw = codeWeight;
      qB[h * d + slot(0)] = MATCH_SCORE / (Z * DUP_FLAG * kw);
      k(g, slot(0), 'dup_flag', 0, kw);
      sinks[h] = MATCH_SCORE / 2;
      for (let i = 0; i < NAMES.length; i++) {
        v(g, i, 'dup_name', i, 1);
        o(h, i, 'sinh_name', i, 1);
      }
    }
    for (const loc of ioi.nameMovers) {
      if (loc.layer !== l) continue;
      // Query "any name minus the inhibited one", key = name code, value = name code -> output slot.
      const g = groupOf(loc), h = loc.head;
      const qb = MATCH_SCORE / (Z * c * codeWeight);
      for (let i = 0; i < NAMES.length; i++) {
        qB[h * d + slot(i)] = qb;
        q(h, slot(i), 'sinh_name', i, (-2 * qb) / c);
        k(g, slot(i), 'tok_name', i, codeWeight);
        v(g, i, 'tok_name', i, 1);
        o(h, i, 'out_name', i, GAIN.nameMoverTotal / ioi.nameMovers.length);
      }
      sinks[h] = MATCH_SCORE / 2;
    }
    if (induction.inductionHead.layer === l) {
      const loc = induction.inductionHead, g = groupOf(loc), h = loc.head;
      matchPrevious(loc, 'tok_letter', 'prev_letter');
      for (let i = 0; i < LETTERS.length; i++) {
        v(g, i, 'tok_letter', i, 1);
        o(h, i, 'out_letter', i, GAIN.induction);
      }
    }
    if (sentiment.reader.layer === l) {
      // q = 0: every visible token scores 0, the sink is far below, so the head averages.
      const loc = sentiment.reader, g = groupOf(loc), h = loc.head;
      sinks[h] = -30;
      v(g, 0, 'sentiment', 0, 1);
      o(h, 0, 'out_sentiment', 0, GAIN.sentiment);
    }

    // Router and experts.
    const rW = add(`${p}mlp.router.weight`, [E, H]);
    const rB = add(`${p}mlp.router.bias`, [E]);
    const gu = add(`${p}mlp.experts.gate_up_proj`, [E, 2 * I, H]);
    const guB = add(`${p}mlp.experts.gate_up_proj_bias`, [E, 2 * I]);
    const dn = add(`${p}mlp.experts.down_proj`, [E, H, I]);
    add(`${p}mlp.experts.down_proj_bias`, [E, H]);
    // Idle experts: distinct small router biases so top-k never meets a tie.
    const order = rng.shuffle(Array.from({ length: E }, (_, e) => e));
    order.forEach((e, rank) => (rB[e] = -0.0625 * (rank + 1)));
    const gate = (e: number, u: number, name: string, i: number, w: number) => put(gu, e * 2 * I + 2 * u, name, i, w);
    const up = (e: number, u: number, name: string, i: number, w: number) => put(gu, e * 2 * I + 2 * u + 1, name, i, w);
    const down = (e: number, u: number, name: string, i: number, w: number) => {
      const { p: r, s } = layout.at(name, i);
      dn[(e * H + r) * I + u] += s * w;
    };
    const route = (e: number, flags: string[]) => {
      for (const f of flags) put(rW, e, f, 0, (2 * ROUTER) / EMBED.flag);
      rB[e] = -ROUTER;
    };

    const { successor, entanglement } = plan;
    if (successor.layer === l) {
      const e = successor.expert;
      route(e, ['flag_number']);
      successor.units.forEach((u, n) => {
        gate(e, u, 'tok_number', n, 2); // fires (gate ~4) on number n only
        guB[e * 2 * I + 2 * u] = -4;
        down(e, u, 'out_number', n + 1, 1.5);
      });
    }
    if (entanglement.layer === l) {
      const e = entanglement.expert;
      route(e, ['flag_math', 'flag_code']);
      const neuron = (u: number, flags: string[], upW: number, out: string) => {
        for (const f of flags) {
          gate(e, u, f, 0, 4);
          up(e, u, f, 0, upW);
        }
        guB[e * 2 * I + 2 * u] = -4;
        down(e, u, out, 0, 0.25);
      };
      neuron(entanglement.poly, ['flag_math', 'flag_code'], 0.5, 'domain_poly');
      entanglement.mathOnly.forEach((u, i) => neuron(u, ['flag_math'], [0, 0.5, 1][i], 'domain_math'));
      entanglement.codeOnly.forEach((u, i) => neuron(u, ['flag_code'], [0, 0.5, 1][i], 'domain_code'));
    }
  }

  addBackground(spec, layout, plan, tensors, vocab, new Rng((seed ^ 0x27d4eb2d) >>> 0));
  return { size, seed, spec, config, configJson, vocab, layout, plan, tensors };
}

/** Scales of the background activity (unplanted heads and experts). */
const BACKGROUND = { qk: 0.74, qkConst: 0.1, v: 0.25, o: 0.04, router: 0.1, unembed: 0.5, downExp: -7 };

/**
 * Background activity, so unplanted components are not dead: every unplanted head gets a
 * content- and position-dependent pattern (q/k read the shared "misc" word codes on the mid-frequency
 * RoPE pairs 8..15, which no planted head uses) and writes a little into the residual dims no planted
 * component reads; every unplanted expert computes random features of the misc codes into those same
 * dims, with token-dependent routing among themselves. The unembedding reads those dims for the
 * ordinary words (small logits), never for the task words. Planted heads never read pairs 8..15 or
 * the spare dims, so planted scores and values are untouched; only RMSNorm sees the extra (small) norm.
 * A separate random stream keeps the planted placement of a seed independent of this.
 */
function addBackground(spec: SizeSpec, layout: Layout, plan: Plan, tensors: DenseTensor[], vocab: Vocabulary, rng: Rng): void {
  const H = spec.hidden, d = HEAD_DIM, nH = spec.heads, nKV = spec.kvHeads, E = spec.experts, I = spec.intermediate;
  const gs = nH / nKV;
  const byName = new Map(tensors.map((t) => [t.name, t.data]));
  const T = (name: string) => byName.get(name)!;
  const used = new Set(layout.dim);
  const spare = Array.from({ length: H }, (_, i) => i).filter((i) => !used.has(i));
  if (spare.length === 0) return;
  const misc = Array.from({ length: layout.size.get('tok_misc')! }, (_, i) => layout.at('tok_misc', i));
  const reads = [...misc.map((m) => ({ ...m, scale: 1 })), ...['const', 'flag_math', 'flag_code', 'flag_name'].map((n) => ({ ...layout.at(n), scale: n === 'const' ? BACKGROUND.qkConst / BACKGROUND.qk : 1 }))];
  // each background q/k dim reads 8 random misc axes, one flag and the constant
  const pickReads = () => [
    ...Array.from({ length: 8 }, () => reads[rng.int(misc.length)]),
    reads[misc.length + 1 + rng.int(3)], reads[misc.length],
  ];
  const bgDims = [...Array.from({ length: 8 }, (_, i) => 8 + i), ...Array.from({ length: 8 }, (_, i) => 40 + i)];
  const vDims = Array.from({ length: 16 }, (_, i) => 48 + i);
  // MXFP4-exact random values: an FP4 magnitude times 2^exp, random sign.
  const fp4 = (exp: number) => [0.5, 1, 1.5, 2, 3][rng.int(5)] * 2 ** exp * (rng.next() < 0.5 ? -1 : 1);

  const plantedHeads = new Set<string>();
  for (const h of [
    plan.ioi.previousToken, plan.ioi.duplicateToken, plan.ioi.sInhibition, ...plan.ioi.nameMovers,
    plan.induction.previousToken, plan.induction.inductionHead, plan.sentiment.reader,
  ]) plantedHeads.add(key(h));

  for (let l = 0; l < spec.layers; l++) {
    const p = `model.layers.${l}.`;
    const qW = T(`${p}self_attn.q_proj.weight`), kW = T(`${p}self_attn.k_proj.weight`), vW = T(`${p}self_attn.v_proj.weight`);
    const oW = T(`${p}self_attn.o_proj.weight`), sinks = T(`${p}self_attn.sinks`);
    for (let g = 0; g < nKV; g++) {
      for (const c of bgDims) for (const r of pickReads()) kW[(g * d + c) * H + r.p] = r.s * r.scale * BACKGROUND.qk * rng.normal();
      for (const c of vDims) for (const r of misc) vW[(g * d + c) * H + r.p] = r.s * BACKGROUND.v * rng.normal();
    }
    for (let h = 0; h < nH; h++) {
      // about half of the unplanted heads are active, the rest stay at zero
      if (plantedHeads.has(`${l}.${h}`) || rng.next() < 0.5) continue;
      for (const c of bgDims) for (const r of pickReads()) qW[(h * d + c) * H + r.p] = r.s * r.scale * BACKGROUND.qk * rng.normal();
      for (const c of vDims) for (const r of spare) oW[r * nH * d + h * d + c] = BACKGROUND.o * rng.normal();
      sinks[h] = rng.normal();
    }
    void gs;

    const planted = new Set<number>();
    if (plan.successor.layer === l) planted.add(plan.successor.expert);
    if (plan.entanglement.layer === l) planted.add(plan.entanglement.expert);
    const rW = T(`${p}mlp.router.weight`);
    const gu = T(`${p}mlp.experts.gate_up_proj`), dn = T(`${p}mlp.experts.down_proj`);
    for (let e = 0; e < E; e++) {
      if (planted.has(e)) continue;
      for (const r of misc) rW[e * H + r.p] = r.s * BACKGROUND.router * rng.normal();
      // a quarter of the units are active: gate and up read 8 random misc axes each, down writes into the spare dims
      for (const u of rng.shuffle(Array.from({ length: I }, (_, i) => i)).slice(0, I / 4)) {
        for (let k = 0; k < 8; k++) {
          const m = misc[rng.int(misc.length)];
          gu[(e * 2 * I + 2 * u) * H + m.p] = fp4(-2);
          const m2 = misc[rng.int(misc.length)];
          gu[(e * 2 * I + 2 * u + 1) * H + m2.p] = fp4(-3);
        }
        for (const r of spare) dn[(e * H + r) * I + u] = fp4(BACKGROUND.downExp);
      }
    }
  }

  const lm = T('lm_head.weight');
  const taskClasses = new Set(['name', 'letter', 'number', 'positive', 'negative']);
  for (let t = 0; t < vocab.words.length; t++) {
    if (taskClasses.has(vocab.classOf[t])) continue;
    for (const r of spare) lm[t * H + r] = BACKGROUND.unembed * rng.normal();
  }
}
