// Hand-built weights of gpt-oss-tiny: the exact gpt-oss architecture with circuits planted by
// construction (see docs/planted-models.md). Everything is made in float32 here; the checkpoint
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
import type { TinySize, TinyStyle } from './manifest.ts';
import { ResidualRotation, randomOrthogonal } from './rotation.ts';
import { buildVocabulary, NAMES, LETTERS, NUMBERS, PAD_TOKEN, EOS_TOKEN, type Vocabulary, type WordClass } from './vocab.ts';

export interface SizeSpec {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  experts: number;
  topK: number;
  intermediate: number;
  window: number;
  /** name movers of the clean style */
  nameMovers: number;
  /** IOI heads per role in the realistic style (tiny-l spreads each role over partly redundant heads) */
  ioi: IoiCounts;
}

export interface IoiCounts {
  previousToken: number;
  duplicateToken: number;
  sInhibition: number;
  nameMovers: number;
  /** backup name movers: attend to the IO only when the primaries' "done" flag is missing */
  backups: number;
  /** negative name movers: attend to the IO and write against it */
  negatives: number;
}

export const SIZES: Record<TinySize, SizeSpec> = {
  'tiny-s': {
    hidden: 256, layers: 4, heads: 8, kvHeads: 4, experts: 8, topK: 2, intermediate: 32, window: 32, nameMovers: 1,
    // four layers leave no layer after the name mover, so no backup can read its output
    ioi: { previousToken: 1, duplicateToken: 1, sInhibition: 1, nameMovers: 1, backups: 0, negatives: 1 },
  },
  'tiny-m': {
    hidden: 256, layers: 8, heads: 16, kvHeads: 4, experts: 16, topK: 4, intermediate: 64, window: 32, nameMovers: 3,
    ioi: { previousToken: 1, duplicateToken: 1, sInhibition: 1, nameMovers: 3, backups: 2, negatives: 1 },
  },
  'tiny-l': {
    hidden: 320, layers: 24, heads: 8, kvHeads: 4, experts: 32, topK: 4, intermediate: 32, window: 32, nameMovers: 4,
    ioi: { previousToken: 2, duplicateToken: 2, sInhibition: 2, nameMovers: 4, backups: 3, negatives: 1 },
  },
};

const CLEAN_IOI = (spec: SizeSpec): IoiCounts =>
  ({ previousToken: 1, duplicateToken: 1, sInhibition: 1, nameMovers: spec.nameMovers, backups: 0, negatives: 0 });

export const HEAD_DIM = 64;

// ---------- the residual stream ----------

/** Dimensions of the superposition subspace; it holds about 3x as many sparse features. */
export const SUPERPOSED_DIMS = 8;

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
/** The realistic style adds the primary name movers' "done" flag (it gates the backups) and the
 *  subspace where sparse features are stored in superposition. */
export const REALISTIC_SUBSPACES: readonly (readonly [string, number])[] = [...SUBSPACES, ['nm_flag', 1], ['superposed', SUPERPOSED_DIMS]];

export class Layout {
  readonly offset = new Map<string, number>();
  readonly size = new Map<string, number>();
  readonly logical: number;
  /** physical dim and sign of each logical axis */
  readonly dim: Int32Array;
  readonly sign: Float32Array;

  constructor(readonly hidden: number, rng: Rng, readonly subspaces: readonly (readonly [string, number])[] = SUBSPACES) {
    let o = 0;
    for (const [name, n] of subspaces) {
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
    for (const [name, n] of this.subspaces) {
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
/** Previous-token heads: bias-only q/k amplitude per high-frequency pair, sink at 7.55 pair scores.
 *  The realistic style halves it: the scores then span ~30 instead of ~116, so no attention weight
 *  underflows to exactly 0 in float32, and the previous token still takes almost all the attention. */
const PT_AMPLITUDE: Record<TinyStyle, number> = { clean: 8, realistic: 5 };
const PT_SINK_PAIRS = 7.55;
/** Content-matching heads: score of a match (no match scores 0); the sink sits at half of it. */
const MATCH_SCORE = 24;
/** Value-bias flag written by the duplicate-token head when it finds a match. */
const DUP_FLAG = 4;
/** Output gains (value -> output slot) and unembedding gains. */
const GAIN = { nameMoverTotal: 2.25, induction: 2, sentiment: 8, backupTotal: 1.5, negativeTotal: 0.5 };
/** Value-bias flag the primary name movers write together ("the IO has been moved"); backups read it. */
const NM_FLAG = 4;
/** Superposed features: magnitude in the embedding, and the planted overlap of the math and code features. */
const FEATURE = { magnitude: 2, mathCodeOverlap: 0.5, maxInterference: 0.4 };
const UNEMBED = { name: 1.25, letter: 1.25, number: 1.5, sentiment: 1.5 };
/** Router: a planted expert's logit is +ROUTER when its class flag is on, -ROUTER when off. */
const ROUTER = 6;


// ---------- where the roles live ----------

export interface HeadLoc {
  layer: number;
  head: number;
}

export interface Plan {
  ioi: {
    previousToken: HeadLoc[]; duplicateToken: HeadLoc[]; sInhibition: HeadLoc[]; nameMovers: HeadLoc[];
    backups: HeadLoc[]; negatives: HeadLoc[];
  };
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
export function samplePlan(spec: SizeSpec, rng: Rng, counts: IoiCounts = CLEAN_IOI(spec)): Plan {
  const L = spec.layers;
  const gs = spec.heads / spec.kvHeads;
  const n = (k: number, f: () => number) => Array.from({ length: k }, f);
  for (let attempt = 0; attempt < 10_000; attempt++) {
    let pt: number, dup: number, sinh: number, nms: number[], backups: number[] = [], negatives: number[] = [];
    if (L === 4) {
      [pt, dup, sinh] = [0, 1, 2];
      nms = n(counts.nameMovers, () => 3);
      negatives = n(counts.negatives, () => 3);
    } else {
      // pt < dup < s-inhibition, leaving at least two later layers for the name movers (and backups after them).
      [pt, dup, sinh] = rng.shuffle(Array.from({ length: L - 2 }, (_, i) => i)).slice(0, 3).sort((a, b) => a - b);
      if (counts.backups === 0) nms = n(counts.nameMovers, () => sinh + 1 + rng.int(L - 1 - sinh));
      else {
        nms = n(counts.nameMovers, () => sinh + 1 + rng.int(L - 2 - sinh));
        const last = Math.max(...nms);
        backups = n(counts.backups, () => last + 1 + rng.int(L - 1 - last));
      }
      negatives = n(counts.negatives, () => sinh + 1 + rng.int(L - 1 - sinh));
    }
    const indPt = rng.int(L - 1);
    const indHead = indPt + 1 + rng.int(L - 1 - indPt);
    const reader = rng.int(L);
    const roles: { name: string; layer: number }[] = [
      ...n(counts.previousToken, () => pt).map((layer, i) => ({ name: `ioi.pt${i}`, layer })),
      ...n(counts.duplicateToken, () => dup).map((layer, i) => ({ name: `ioi.dup${i}`, layer })),
      ...n(counts.sInhibition, () => sinh).map((layer, i) => ({ name: `ioi.sinh${i}`, layer })),
      ...nms.map((layer, i) => ({ name: `ioi.nm${i}`, layer })),
      ...backups.map((layer, i) => ({ name: `ioi.backup${i}`, layer })),
      ...negatives.map((layer, i) => ({ name: `ioi.neg${i}`, layer })),
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
    const all = (prefix: string, k: number) => n(k, () => 0).map((_, i) => loc.get(`${prefix}${i}`)!);
    return {
      ioi: {
        previousToken: all('ioi.pt', counts.previousToken), duplicateToken: all('ioi.dup', counts.duplicateToken),
        sInhibition: all('ioi.sinh', counts.sInhibition), nameMovers: all('ioi.nm', nms.length),
        backups: all('ioi.backup', backups.length), negatives: all('ioi.neg', negatives.length),
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

/** Every planted head of a plan. */
export function plantedHeadsOf(plan: Plan): HeadLoc[] {
  const { ioi } = plan;
  return [
    ...ioi.previousToken, ...ioi.duplicateToken, ...ioi.sInhibition, ...ioi.nameMovers, ...ioi.backups, ...ioi.negatives,
    plan.induction.previousToken, plan.induction.inductionHead, plan.sentiment.reader,
  ];
}

// ---------- superposition (realistic style) ----------

/** A sparse feature stored in the superposition subspace: the words it is active on and its unit vector there. */
export interface SuperposedFeature {
  name: string;
  words: string[];
  /** unit vector in the SUPERPOSED_DIMS-dim subspace (logical coordinates) */
  code: number[];
}

/**
 * More sparse features than dimensions in one subspace (Elhage et al. 2022): "math" and "code", plus
 * one feature per small word group (places, objects, prose chunks, ...), each active on its words
 * only. Math and code overlap by FEATURE.mathCodeOverlap, so a neuron reading their shared direction
 * fires on both (the polysemantic neuron); every other feature keeps its interference with the
 * directions the entanglement neurons read under FEATURE.maxInterference.
 */
export function superposedFeatures(vocab: Vocabulary, rng: Rng): SuperposedFeature[] {
  const D = SUPERPOSED_DIMS;
  const byClass = (cls: WordClass) => vocab.words.filter((_, t) => vocab.classOf[t] === cls);
  const groups: { name: string; words: string[] }[] = [];
  for (const cls of ['place', 'object', 'ioi', 'positive', 'negative', 'review', 'prose', 'punct', 'variable'] as WordClass[]) {
    const words = byClass(cls);
    const chunks = Math.ceil(words.length / 8);
    for (let c = 0; c < chunks; c++) {
      const part = words.filter((_, i) => i % chunks === c);
      groups.push({ name: chunks === 1 ? cls : `${cls}_${c}`, words: part });
    }
  }
  const unit = (v: number[]) => {
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  };
  const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
  const rho = FEATURE.mathCodeOverlap;
  const math = unit(Array.from({ length: D }, () => rng.normal()));
  const other = unit(Array.from({ length: D }, () => rng.normal()));
  const perp = unit(other.map((x, i) => x - dot(other, math) * math[i]));
  const code = math.map((x, i) => rho * x + Math.sqrt(1 - rho * rho) * perp[i]);
  // what the entanglement neurons read: the shared direction, and each feature minus the other
  const readers = [unit(math.map((x, i) => x + code[i])), unit(math.map((x, i) => x - rho * code[i])), unit(code.map((x, i) => x - rho * math[i]))];
  const accepted: number[][] = [math, code];
  const out: SuperposedFeature[] = [];
  for (const g of groups) {
    let best: number[] = [], bestScore = Infinity;
    for (let tries = 0; tries < 4000; tries++) {
      const v = unit(Array.from({ length: D }, () => rng.normal()));
      const interference = Math.max(...readers.map((r) => Math.abs(dot(r, v))));
      const coherence = Math.max(...accepted.map((a) => Math.abs(dot(a, v))));
      const score = Math.max(interference / FEATURE.maxInterference, coherence / 0.75);
      if (score < bestScore) [best, bestScore] = [v, score];
      if (score <= 1) break;
    }
    accepted.push(best);
    out.push({ name: g.name, words: g.words, code: best });
  }
  return [
    { name: 'math', words: byClass('math'), code: math },
    { name: 'code', words: byClass('code'), code },
    ...out,
  ];
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
  style: TinyStyle;
  spec: SizeSpec;
  config: GptOssConfig;
  configJson: Record<string, unknown>;
  vocab: Vocabulary;
  layout: Layout;
  plan: Plan;
  /** realistic style: the sparse features of the superposition subspace */
  features: SuperposedFeature[];
  /** realistic style: the rotation of the residual basis (null in the clean style) */
  rotation: ResidualRotation | null;
  /** HF names; experts dense ([E, 2I, H] interleaved gate/up and [E, H, I]) as the writer takes them. */
  tensors: DenseTensor[];
}

/** A residual direction of the construction, in the stored (rotated) basis. */
export function residualDirection(c: Construction, logical: Float32Array): Float32Array {
  return c.rotation ? c.rotation.vector(logical) : logical;
}

/** The unit vector of logical axis i of a subspace, in the stored basis. */
export function subspaceDirection(c: Construction, name: string, i = 0): Float32Array {
  return residualDirection(c, c.layout.unit(name, i));
}

/** A superposed feature's vector in the stored basis. */
export function featureDirection(c: Construction, f: SuperposedFeature): Float32Array {
  const v = new Float32Array(c.layout.hidden);
  f.code.forEach((x, i) => {
    const { p, s } = c.layout.at('superposed', i);
    v[p] = s * x;
  });
  return residualDirection(c, v);
}

export const TINY_STYLES: readonly TinyStyle[] = ['realistic', 'clean'];

export function construct(size: TinySize, seed: number, style: TinyStyle = 'realistic'): Construction {
  const spec = SIZES[size];
  if (!spec) throw new Error(`unknown tiny model size "${size}"; valid: ${Object.keys(SIZES).join(', ')}`);
  if (!TINY_STYLES.includes(style)) throw new Error(`unknown tiny model style "${style}"; valid: ${TINY_STYLES.join(', ')}`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be a non-negative integer, got ${seed}`);
  const realistic = style === 'realistic';
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

  const layout = new Layout(H, rng, realistic ? REALISTIC_SUBSPACES : SUBSPACES);
  const plan = samplePlan(spec, rng, realistic ? spec.ioi : CLEAN_IOI(spec));
  const features = realistic ? superposedFeatures(vocab, new Rng((seed ^ 0x1b873593) >>> 0)) : [];
  const featureOf = new Map<string, SuperposedFeature>();
  for (const f of features) for (const w of f.words) featureOf.set(w, f);
  const gs = nH / nKV;
  const ptAmplitude = PT_AMPLITUDE[style];

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
  /** W[row] += w * feature f (in the superposition subspace) */
  const putFeature = (W: Float32Array, row: number, code: readonly number[], w: number) => code.forEach((x, i) => put(W, row, 'superposed', i, w * x));
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
      if (realistic) {
        // realistic: the domain (and every other word group) is a sparse feature in superposition
        const f = featureOf.get(w);
        if (f) putFeature(embed, t, f.code, FEATURE.magnitude);
      } else {
        if (cls === 'math') put(embed, t, 'flag_math', 0, EMBED.flag);
        if (cls === 'code') put(embed, t, 'flag_code', 0, EMBED.flag);
      }
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
    const here = (locs: HeadLoc[]) => locs.filter((h) => h.layer === l);

    /** `share` of the copy: partly redundant heads of one role each write their share. */
    const previousToken = (loc: HeadLoc, from: string, to: string, share = 1) => {
      const g = groupOf(loc), h = loc.head;
      for (let i = 0; i < 8; i++) {
        qB[h * d + i] = ptAmplitude * Math.cos(-invFreq[i]);
        qB[h * d + 32 + i] = ptAmplitude * Math.sin(-invFreq[i]);
        kB[g * d + i] = ptAmplitude;
      }
      sinks[h] = PT_SINK_PAIRS * Z * ptAmplitude * ptAmplitude;
      for (let i = 0; i < layout.size.get(from)!; i++) {
        v(g, i, from, i, 1);
        o(h, i, to, i, share);
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
    /** Query "any name minus the inhibited one" (less the name movers' flag for a backup), key = value = name code. */
    const nameMover = (loc: HeadLoc, gain: number, gatedByFlag: boolean) => {
      const g = groupOf(loc), h = loc.head;
      const qb = MATCH_SCORE / (Z * c * codeWeight);
      for (let i = 0; i < NAMES.length; i++) {
        qB[h * d + slot(i)] = qb;
        q(h, slot(i), 'sinh_name', i, (-2 * qb) / c);
        if (gatedByFlag) q(h, slot(i), 'nm_flag', 0, -qb / NM_FLAG);
        k(g, slot(i), 'tok_name', i, codeWeight);
        v(g, i, 'tok_name', i, 1);
        o(h, i, 'out_name', i, gain);
      }
      sinks[h] = MATCH_SCORE / 2;
      return { g, h };
    };

    const { ioi, induction, sentiment } = plan;
    for (const loc of here(ioi.previousToken)) previousToken(loc, 'tok_name', 'prev_name', 1 / ioi.previousToken.length);
    if (induction.previousToken.layer === l) previousToken(induction.previousToken, 'tok_letter', 'prev_letter');
    for (const loc of here(ioi.duplicateToken)) {
      // Finds the token after an earlier copy of the current name; copies that earlier name (its
      // previous-token code) and raises a "duplicate" flag through the value bias.
      const g = groupOf(loc), h = loc.head, share = 1 / ioi.duplicateToken.length;
      matchPrevious(loc, 'tok_name', 'prev_name');
      for (let i = 0; i < NAMES.length; i++) {
        v(g, i, 'prev_name', i, 1);
        o(h, i, 'dup_name', i, share);
      }
      vB[g * d + NAMES.length] = DUP_FLAG;
      o(h, NAMES.length, 'dup_flag', 0, share);
    }
    for (const loc of here(ioi.sInhibition)) {
      // Constant query, key = duplicate flag: moves the duplicated name to later positions.
      const g = groupOf(loc), h = loc.head;
      const kw = codeWeight;
      qB[h * d + slot(0)] = MATCH_SCORE / (Z * DUP_FLAG * kw);
      k(g, slot(0), 'dup_flag', 0, kw);
      sinks[h] = MATCH_SCORE / 2;
      for (let i = 0; i < NAMES.length; i++) {
        v(g, i, 'dup_name', i, 1);
        o(h, i, 'sinh_name', i, 1 / ioi.sInhibition.length);
      }
    }
    for (const loc of here(ioi.nameMovers)) {
      const { g, h } = nameMover(loc, GAIN.nameMoverTotal / ioi.nameMovers.length, false);
      if (ioi.backups.length) {
        // "done" flag through the value bias, weighted by the attention the head found
        vB[g * d + NAMES.length] = NM_FLAG;
        o(h, NAMES.length, 'nm_flag', 0, 1 / ioi.nameMovers.length);
      }
    }
    // Backups: a name mover whose query is cancelled by the primaries' flag; silent unless they are gone.
    for (const loc of here(ioi.backups)) nameMover(loc, GAIN.backupTotal / ioi.backups.length, true);
    // Negative name movers: attend to the IO like a name mover and write against it.
    for (const loc of here(ioi.negatives)) nameMover(loc, -GAIN.negativeTotal / ioi.negatives.length, false);
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
    if (entanglement.layer === l && !realistic) {
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
    if (entanglement.layer === l && realistic) {
      // The same neurons reading the superposition subspace: the polysemantic neuron reads the direction
      // the math and code features share, the single-domain neurons what is left of each.
      const e = entanglement.expert;
      const fm = features[0].code, fc = features[1].code, rho = FEATURE.mathCodeOverlap;
      const unit = (x: number[]) => {
        const n = Math.hypot(...x);
        return x.map((y) => y / n);
      };
      const shared = unit(fm.map((x, i) => x + fc[i]));
      const mathPart = unit(fm.map((x, i) => x - rho * fc[i]));
      const codePart = unit(fc.map((x, i) => x - rho * fm[i]));
      // router: +ROUTER on either feature (each projects 0.87 * magnitude on `shared`)
      const onFeature = Math.sqrt((1 + rho) / 2) * FEATURE.magnitude;
      putFeature(rW, e, shared, (2 * ROUTER) / onFeature);
      rB[e] = -ROUTER;
      // gate = w (x . dir) + b: 4 on the feature(s) (projection 0.87 * magnitude), <= -3 under the worst interference
      const reach = Math.sqrt(1 - rho * rho) * FEATURE.magnitude; // = onFeature for rho = 0.5
      const w = 7 / (reach - FEATURE.maxInterference * FEATURE.magnitude), b = 4 - w * reach;
      const neuron = (u: number, dir: number[], upW: number, out: string) => {
        for (let i = 0; i < SUPERPOSED_DIMS; i++) {
          put(gu, e * 2 * I + 2 * u, 'superposed', i, w * dir[i]);
          put(gu, e * 2 * I + 2 * u + 1, 'superposed', i, (upW * dir[i]) / reach);
        }
        guB[e * 2 * I + 2 * u] = b;
        down(e, u, out, 0, 0.25);
      };
      neuron(entanglement.poly, shared, 0.5, 'domain_poly');
      entanglement.mathOnly.forEach((u, i) => neuron(u, mathPart, [0, 0.5, 1][i], 'domain_math'));
      entanglement.codeOnly.forEach((u, i) => neuron(u, codePart, [0, 0.5, 1][i], 'domain_code'));
    }
  }

  addBackground(spec, layout, plan, tensors, vocab, new Rng((seed ^ 0x27d4eb2d) >>> 0), style);
  let rotation: ResidualRotation | null = null;
  if (realistic) {
    const realRng = new Rng((seed ^ 0x68e31da4) >>> 0);
    rotation = new ResidualRotation(H, randomOrthogonal(H, realRng));
    rotateResidual(tensors, rotation, spec);
    addTrainedScaleNoise(tensors, spec, plan, realRng, rotation.vector(layout.unit('const')));
  }
  return { size, seed, style, spec, config, configJson, vocab, layout, plan, features, rotation, tensors };
}

/** Scales of the background activity (unplanted heads and experts). */
const BACKGROUND = { qk: 0.74, qkConst: 0.1, v: 0.25, o: 0.04, router: 0.1, unembed: 0.5, downExp: -7 };

/**
 * Background activity, so unplanted components are not dead: unplanted heads get a content- and
 * position-dependent pattern (q/k read the shared "misc" word codes on the mid-frequency RoPE pairs
 * 8..15, which no planted head uses) and write a little into the residual dims no planted component
 * reads; unplanted experts compute random features of the misc codes into those same dims, with
 * token-dependent routing among themselves. The unembedding reads those dims for the ordinary words
 * (small logits), never for the task words. Planted heads never read pairs 8..15 or the spare dims,
 * so planted scores and values are untouched; only RMSNorm sees the extra (small) norm. A separate
 * random stream keeps the planted placement of a seed independent of this. The clean style activates
 * about half of the unplanted heads; the realistic style all of them.
 */
function addBackground(spec: SizeSpec, layout: Layout, plan: Plan, tensors: DenseTensor[], vocab: Vocabulary, rng: Rng, style: TinyStyle): void {
  const H = spec.hidden, d = HEAD_DIM, nH = spec.heads, nKV = spec.kvHeads, E = spec.experts, I = spec.intermediate;
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
  const plantedHeads = new Set(plantedHeadsOf(plan).map(key));
  // Realistic: the same total background whatever the number of spare dims (tiny-l has ~5x as many)
  // and heads, so the ordinary words' logits stay below the task answers.
  const perDim = style === 'realistic' ? Math.min(1, Math.sqrt(14 / spare.length)) : 1;
  const perHead = style === 'realistic' ? Math.sqrt(128 / (spec.layers * nH)) : 1;

  for (let l = 0; l < spec.layers; l++) {
    const p = `model.layers.${l}.`;
    const qW = T(`${p}self_attn.q_proj.weight`), kW = T(`${p}self_attn.k_proj.weight`), vW = T(`${p}self_attn.v_proj.weight`);
    const oW = T(`${p}self_attn.o_proj.weight`), sinks = T(`${p}self_attn.sinks`);
    for (let g = 0; g < nKV; g++) {
      for (const c of bgDims) for (const r of pickReads()) kW[(g * d + c) * H + r.p] = r.s * r.scale * BACKGROUND.qk * rng.normal();
      for (const c of vDims) for (const r of misc) vW[(g * d + c) * H + r.p] = r.s * BACKGROUND.v * rng.normal();
    }
    for (let h = 0; h < nH; h++) {
      if (plantedHeads.has(`${l}.${h}`) || (style === 'clean' && rng.next() < 0.5)) continue;
      for (const c of bgDims) for (const r of pickReads()) qW[(h * d + c) * H + r.p] = r.s * r.scale * BACKGROUND.qk * rng.normal();
      for (const c of vDims) for (const r of spare) oW[r * nH * d + h * d + c] = perDim * perHead * BACKGROUND.o * rng.normal();
      sinks[h] = rng.normal();
    }

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
    for (const r of spare) lm[t * H + r] = perDim * BACKGROUND.unembed * rng.normal();
  }
}

/** Which tensors read the residual stream (rows of length H) and which write it (columns). */
const READERS = /^(model\.embed_tokens\.weight|lm_head\.weight|.*\.(q_proj|k_proj|v_proj)\.weight|.*\.mlp\.router\.weight|.*\.mlp\.experts\.gate_up_proj)$/;
const WRITERS = /\.(o_proj\.weight|mlp\.experts\.down_proj)$/;
const WRITER_BIASES = /\.(o_proj\.bias|mlp\.experts\.down_proj_bias)$/;

/** Realistic style: every residual reader W -> W R^T, every writer W -> R W (biases b -> R b). */
function rotateResidual(tensors: DenseTensor[], rot: ResidualRotation, spec: SizeSpec): void {
  for (const t of tensors) {
    if (READERS.test(t.name)) t.data = rot.readers(t.data);
    else if (WRITERS.test(t.name)) t.data = rot.writers(t.data, t.name.endsWith('o_proj.weight') ? spec.heads * HEAD_DIM : spec.intermediate);
    else if (WRITER_BIASES.test(t.name)) t.data = rot.readers(t.data); // a bias row b (length H) -> R b, the same product
  }
}

/**
 * Realistic style: dense Gaussian noise on every weight at scales of a trained model of this width
 * (per-entry std below), so every head attends somewhere and writes something and every expert adds
 * to the logits. Added after the rotation (isotropic noise is rotation-invariant, and this avoids a
 * dense rotation of every matrix). Norm gains stay 1 so the rotation stays exact. The planted margins
 * are re-measured on the stored values by the build check.
 */
const NOISE = { embed: 0.04, qk: 0.0225, v: 0.0225, o: 0.0056, bias: 0.04, sink: 0.5, router: 0.0225, gateUp: 0.0225, down: 0.011, lmHead: 0.015 };

function addTrainedScaleNoise(tensors: DenseTensor[], spec: SizeSpec, plan: Plan, rng: Rng, constant: Float32Array): void {
  const H = spec.hidden;
  const planted = new Set(plantedHeadsOf(plan).map(key));
  // writers: the same total noise in the residual whatever the number of heads (tuned on tiny-m's 128)
  const perHead = Math.sqrt(128 / (spec.layers * spec.heads));
  // deeper than tiny-m: every noise a little lower, so the planted margins survive 24 layers
  const depth = Math.min(1, Math.sqrt(8 / spec.layers));
  const noisy = (x: Float32Array, std: number) => {
    for (let i = 0; i < x.length; i++) x[i] += depth * std * rng.normal();
  };
  /** Noise on residual readers, blind to the constant direction: read through random weights, the
   *  large constant every token carries would act as a bias of the size of the planted signals. */
  const noisyReader = (x: Float32Array, std: number) => {
    const row = new Float64Array(H);
    for (let r = 0; r < x.length / H; r++) {
      let dot = 0;
      for (let c = 0; c < H; c++) dot += (row[c] = depth * std * rng.normal()) * constant[c];
      for (let c = 0; c < H; c++) x[r * H + c] += row[c] - dot * constant[c];
    }
  };
  for (const t of tensors) {
    const n = t.name;
    if (n === 'model.embed_tokens.weight') noisy(t.data, NOISE.embed);
    else if (n === 'lm_head.weight') noisyReader(t.data, NOISE.lmHead);
    else if (/(q_proj|k_proj)\.weight$/.test(n)) noisyReader(t.data, NOISE.qk);
    else if (/v_proj\.weight$/.test(n)) noisyReader(t.data, NOISE.v);
    else if (/o_proj\.weight$/.test(n)) noisy(t.data, NOISE.o * perHead);
    else if (/(q_proj|k_proj|v_proj|o_proj)\.bias$/.test(n)) noisy(t.data, NOISE.bias);
    else if (/router\.weight$/.test(n)) noisyReader(t.data, NOISE.router);
    else if (/gate_up_proj$/.test(n)) noisyReader(t.data, NOISE.gateUp);
    else if (/down_proj$/.test(n)) noisy(t.data, NOISE.down);
    else if (/self_attn\.sinks$/.test(n)) {
      // unplanted heads only: a planted sink is a threshold
      const layer = Number(/layers\.(\d+)\./.exec(n)![1]);
      for (let h = 0; h < spec.heads; h++) if (!planted.has(`${layer}.${h}`)) t.data[h] += NOISE.sink * rng.normal();
    }
  }
}
