// The gpt-oss engine: layer-major execution of a batch through ONNX graphs, with hook capture,
// interventions and routing interventions. Every variant of a batch passes layer L before L+1,
// and a run can start at layer L from a cached residual stream, or continue from a KV cache
// (`past`): then only the new tokens are computed, attending to the cached keys and values.
import * as ort from 'onnxruntime-node';
import { Checkpoint, expectedTensors, type AttentionWeights, type ExpertWeights } from './checkpoint.ts';
import type { GptOssConfig } from './config.ts';
import { ATTENTION_WEIGHT_INPUTS } from './graphs/attention.ts';
import { captureOutput, interventionInput, type HookPlan } from './graphs/common.ts';
import { blockHook, inBlock, saeHooksAt, saeLocal } from './hook-address.ts';
import { axisSize, expandHooks, listHooks, resolveHook, saeHookListings, type HookListing, type ResolvedHook } from './hooks.ts';
import {
  applyIntervention, resolveInterventions,
  type Intervention, type ResolvedIntervention, type RoutingIntervention,
} from './intervention.ts';
import { ropeTables } from './rope.ts';
import { expertBytes } from './graphs/packed-experts.ts';
import { LayerExperts, type ExpertEncoding, type ExpertSpan } from './packed-experts.ts';
import { Scratch } from './scratch.ts';
import { spliceDictionary, spliceWanted, type SaeAttachment } from './sae/splice.ts';
import { SessionCache, type SessionOptions } from './sessions.ts';
import { WeightCache } from './weight-cache.ts';
import { totalmem } from 'node:os';
import { expandTo, numel, takeAxis, type Tensor } from './tensor.ts';

export class EngineError extends Error {}

export interface EngineOptions extends SessionOptions {
  /** Keep dequantised weights in memory after first use (default true; false streams every layer from disk). */
  cacheWeights?: boolean;
  /**
   * Memory the engine may use, in GiB (default: 75% of this machine's RAM). Weights are cached up to
   * what is left after a run's activations; a run whose activations alone exceed it is refused.
   */
  memoryBudgetGb?: number;
  /** Longest prompt accepted (default: the config's max_position_embeddings, capped at 4096). */
  maxTokens?: number;
  /**
   * How expert weights are held (default 'auto'): in per-layer sessions as prepacked initializers,
   * 'pairs' (MXFP4 kept packed, exact), 'f32' (dequantised once) or 'both' (each expert's rows go to
   * whichever suits their count); or 'stream': dequantised to float32 in JS on every use (weights
   * as inputs). 'auto' takes 'both', else 'pairs', else 'f32' when they fit the weight cache (half
   * of memoryBudgetGb) beside the other weights, else 'stream'.
   */
  expertWeights?: 'auto' | 'pairs' | 'f32' | 'both' | 'stream';
}

export interface Progress {
  stage: 'layer' | 'unembed';
  done: number;
  total: number;
}

/** One layer's cached keys (after RoPE) and values, [B, nKV, P, d] each. */
export interface KvLayer {
  k: Tensor;
  v: Tensor;
}

/** Keys and values of positions 0..length-1 of every row, per layer, as a run with `returnKv` returns them. */
export interface KvCache {
  /** Cached positions P (the same for every row: a cache holds no padding). */
  length: number;
  layers: KvLayer[];
}

export interface RunOptions {
  /** Hook names or patterns to copy out (only these are copied). */
  capture?: readonly string[];
  interventions?: readonly Intervention[];
  routing?: readonly RoutingIntervention[];
  /** Which positions to unembed: the last real token of each row (default), all positions, or none. */
  logits?: 'last' | 'all' | 'none';
  /**
   * Start at this layer from `startResid` ([B, T, H], the residual entering it). One number for
   * the whole batch, or one per row: a row joins the batch at its own layer, so a sweep whose
   * variants start at different layers still passes over each layer's weights once.
   */
  startLayer?: number | readonly number[];
  startResid?: Tensor;
  /** Stop after this many layers (exclusive end layer); implies logits 'none' unless it is the last. */
  endLayer?: number;
  /**
   * Keys and values of the positions before this batch: the batch's tokens are positions P..P+T-1
   * and attend to the cached ones. Every row must have the same length (no padding inside a cache).
   * Hooks and interventions cover the new positions only (the attention key axis is P+T); routing
   * `positions` are absolute, and those below P are already cached and not recomputed.
   * Combinable with startLayer/startResid (startResid then holds the new positions only): a patch
   * at layer L, position p changes nothing before p, so a sweep computes only that causal cone.
   */
  past?: KvCache;
  /** Return the KV cache of every position so far (past + this batch) in `kv`; needs equal-length rows and every layer. */
  returnKv?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
}

export interface RunResult {
  /** Real (unpadded) length of each row (with `past`: new tokens only). */
  lengths: number[];
  /** Padded length T (with `past`: new tokens only). */
  length: number;
  /** [B, P, V]: P = 1 for 'last', T for 'all'. */
  logits: Tensor | null;
  /** Captured hooks by full name; padded positions (t >= length of its row) hold unspecified values. */
  cache: Map<string, Tensor>;
  /** Residual stream leaving the last layer run, [B, T, H]. */
  resid: Tensor;
  /** With `returnKv`: the cache of positions 0..P+T-1, to pass as `past` to the next step. */
  kv?: KvCache;
}

interface LayerStep {
  layer: number;
  /** Local hook names (e.g. `attn.hook_z`) captured and intervened on at this layer. */
  capture: Set<string>;
  ivs: Map<string, ResolvedIntervention>;
  /** Routing interventions, with row indices relative to the rows active at this layer. */
  routing: readonly RoutingIntervention[];
  /** Absolute position of the batch's first token (the cached length P). */
  posOffset: number;
  /** Rows of the batch active at this layer, or null when all are (rows join at their startLayer). */
  rows: number[] | null;
}

interface LayerInputs {
  cos: Tensor;
  sin: Tensor;
  masks: { sliding: Tensor; full: Tensor };
  /** In a cached run: the past per layer (null for a prefill) and where each layer's present goes. */
  kv: { past: KvCache | null; present: KvLayer[] } | null;
  /** Buffers reused from layer to layer (and run to run) for the stacked expert rows. */
  scratch: Scratch;
}

/** Scratch buffers a model keeps between runs, at most this many bytes (a larger run's are dropped). */
const KEPT_SCRATCH_BYTES = 512 * 2 ** 20;

const copy = (t: Tensor): Tensor => ({ data: t.data.slice(), dims: [...t.dims] });

/** Rows `rows` of a batch-first tensor. */
const selectRows = (t: Tensor, rows: number[]): Tensor => takeAxis(t, 0, rows);

/** Writes the rows of `part` back into rows `rows` of `into`; returns `into`. */
function scatterRows(into: Tensor, part: Tensor, rows: number[]): Tensor {
  const per = part.data.length / part.dims[0];
  rows.forEach((b, i) => into.data.set(part.data.subarray(i * per, (i + 1) * per), b * per));
  return into;
}

const zerosLike = (t: Tensor, B: number): Tensor => ({ data: new Float32Array(B * (t.data.length / t.dims[0])), dims: [B, ...t.dims.slice(1)] });

/** An intervention narrowed to the active rows (parts with a batch dim of 1 broadcast as they are). */
function selectIntervention(iv: ResolvedIntervention, rows: number[], B: number): ResolvedIntervention {
  const pick = (t: Tensor) => (t.dims[0] === B && B > 1 ? selectRows(t, rows) : t);
  return { hook: iv.hook, mask: pick(iv.mask), value: pick(iv.value), add: pick(iv.add) };
}

/** Routing rules with row indices renumbered to the active rows (rules naming only inactive rows drop out). */
function remapRouting(rules: readonly RoutingIntervention[], rows: number[]): RoutingIntervention[] {
  return rules.flatMap((r) => {
    if (!r.rows) return [r];
    const mapped = r.rows.map((b) => rows.indexOf(b)).filter((i) => i >= 0);
    return mapped.length ? [{ ...r, rows: mapped }] : [];
  });
}

/** Rows `rows` of a KV cache (e.g. to drop finished rows from a generation batch). */
export function selectKvRows(kv: KvCache, rows: number[]): KvCache {
  return { length: kv.length, layers: kv.layers.map((l) => ({ k: selectRows(l.k, rows), v: selectRows(l.v, rows) })) };
}

const toOrt = (t: Tensor) => new ort.Tensor('float32', t.data, t.dims);
const fromOrt = (t: ort.Tensor): Tensor => ({ data: t.data as Float32Array, dims: [...t.dims] });

export class GptOssModel {
  readonly config: GptOssConfig;
  private readonly sessions: SessionCache;
  private readonly weights: WeightCache;
  private readonly cacheExperts: boolean;
  private expertScratch: { gateUpW: Float32Array; downW: Float32Array } | null = null;
  /** Per-layer expert sessions, or null when experts are dequantised to float32 on every use. */
  private readonly packed: LayerExperts | null;
  /** The encodings the per-layer expert sessions hold (empty: streamed). */
  readonly expertEncodings: readonly ExpertEncoding[];
  readonly maxTokens: number;
  readonly memoryBudgetBytes: number;
  /** Dictionaries spliced in, by the hook they read (see engine/sae/splice.ts). */
  private readonly saes = new Map<string, SaeAttachment>();
  /** Scratch buffers of the last run, for the next; null while a run holds them (concurrent runs get their own). */
  private idleScratch: Scratch | null = null;

  private constructor(readonly checkpoint: Checkpoint, opts: EngineOptions) {
    this.config = checkpoint.config;
    this.sessions = new SessionCache(this.config, opts);
    const maxPos = Number(this.config.raw['max_position_embeddings'] ?? 4096);
    this.maxTokens = opts.maxTokens ?? Math.min(maxPos, 4096);
    const budget = opts.memoryBudgetGb ?? (0.75 * totalmem()) / 2 ** 30;
    if (!(budget > 0)) throw new EngineError(`memoryBudgetGb must be positive, got ${opts.memoryBudgetGb}`);
    this.memoryBudgetBytes = budget * 2 ** 30;
    // Half the budget for weights, the rest for a run's activations and onnxruntime's buffers.
    const weightBudget = opts.cacheWeights === false ? 0 : this.memoryBudgetBytes / 2;
    // Every weight the cache can hold, in float32 (the embedding is read row by row, never cached).
    const f32 = expectedTensors(this.config, false).filter((t) => t.name !== 'model.embed_tokens.weight');
    const bytesOf = (ts: typeof f32) => ts.reduce((n, t) => n + 4 * numel(t.shape), 0);
    const cacheable = bytesOf(f32);
    const nonExpert = bytesOf(f32.filter((t) => !t.name.includes('.mlp.experts.')));
    const { numLayers: L, numExperts: E, hiddenSize: H, intermediateSize: I } = this.config;
    // Memory the sessions take: building a float32 session holds the weights in JS and onnxruntime at
    // once (2-layer full width, both encodings: 11.1 GB RSS for 7.6 GiB of weights), so f32 counts twice.
    const held = (encs: readonly ExpertEncoding[]) => encs.reduce((n, k) => n + L * E * expertBytes(k, H, I) * (k === 'f32' ? 2 : 1), 0);
    const fits = (encs: ExpertEncoding[]) => (encs.includes('pairs') ? checkpoint.expertsQuantized : true) && nonExpert + held(encs) <= weightBudget;
    const choice = opts.expertWeights ?? 'auto';
    const CHOICES: Record<string, ExpertEncoding[] | null> = { pairs: ['pairs'], f32: ['f32'], both: ['f32', 'pairs'], stream: null };
    let encodings: ExpertEncoding[] | null;
    if (choice === 'auto') {
      encodings = [CHOICES.both!, CHOICES.pairs!, CHOICES.f32!].find(fits) ?? null;
    } else {
      if (!(choice in CHOICES)) throw new EngineError(`expertWeights must be 'auto', 'pairs', 'f32', 'both' or 'stream', got ${String(choice)}`);
      encodings = CHOICES[choice];
      if (encodings && !fits(encodings)) {
        const need = held(encodings);
        throw new EngineError(encodings.includes('pairs') && !checkpoint.expertsQuantized
          ? `expertWeights '${choice}' needs an MXFP4 checkpoint; this one stores its experts as floats`
          : `expertWeights '${choice}': the experts (${(need / 2 ** 30).toFixed(2)} GiB) and other weights do not fit the weight cache (${(weightBudget / 2 ** 30).toFixed(2)} GiB, half of memoryBudgetGb); raise memoryBudgetGb or use 'auto'`);
      }
    }
    this.packed = encodings ? new LayerExperts(checkpoint, opts, encodings) : null;
    this.weights = new WeightCache(weightBudget - (encodings ? held(encodings) : 0));
    // Cache experts only when all of them fit in the weight cache beside the other weights (an LRU
    // over experts that do not all fit never hits: a pass needs every layer's); otherwise stream them.
    this.cacheExperts = !this.packed && opts.cacheWeights !== false && cacheable <= weightBudget;
    this.expertEncodings = encodings ?? [];
  }

  static load(dir: string, opts: EngineOptions = {}): GptOssModel {
    return new GptOssModel(Checkpoint.open(dir), opts);
  }

  /** The hook list, with the hooks of every attached dictionary after the block hooks. */
  listHooks(): HookListing[] {
    const all = listHooks(this.config);
    const sae = [...this.saes.keys()].flatMap(saeHookListings);
    const unembed = all.findIndex((h) => h.name === 'ln_final.hook_normalized');
    return [...all.slice(0, unembed), ...sae, ...all.slice(unembed)];
  }

  /** Splices a dictionary in at its hook (replacing one attached there); its latents become hooks. */
  attachSae(a: SaeAttachment): void {
    const d = a.runner.dict;
    // Resolving its latent hook checks the site (a block hook computed in JS) and the layer.
    resolveHook(saeHooksAt(a.site).hook_sae_acts, this.config.numLayers);
    if (d.hookOut || d.dOut !== d.dIn) throw new EngineError(`dictionary ${a.saeId} is a transcoder (${d.hook} -> ${d.hookOut}); only SAEs (output = input) splice in as hooks`);
    if (d.dIn !== this.config.hiddenSize) throw new EngineError(`dictionary ${a.saeId} reads ${d.dIn} values per token; ${a.site} has ${this.config.hiddenSize}`);
    this.saes.set(a.site, a);
  }

  /** Removes the dictionary at `site`; returns it (the caller releases its sessions). */
  detachSae(site: string): SaeAttachment | undefined {
    const a = this.saes.get(site);
    this.saes.delete(site);
    return a;
  }

  get attachedSaes(): SaeAttachment[] {
    return [...this.saes.values()];
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.saes.values()].map((a) => a.runner.release()));
    this.saes.clear();
    await this.sessions.release();
    await this.packed?.release();
    this.weights.clear();
    this.expertScratch = null;
  }

  /** Shape of a hook for a batch of B rows padded to T, with P unembedded positions, after `past` cached positions. */
  hookDims(h: ResolvedHook, B: number, T: number, P: number, past = 0): number[] {
    let dSae: number | undefined;
    if (h.address.kind === 'sae') {
      const site = blockHook(h.address.layer, h.address.site);
      const a = this.saes.get(site);
      if (!a) throw new EngineError(`hook "${h.name}": no dictionary is attached at ${site}${this.saes.size ? ` (attached at: ${[...this.saes.keys()].join(', ')})` : ''}; attach one first (attach_sae / train_sae)`);
      dSae = a.runner.dict.dSae;
    }
    return h.spec.axes.map((axis) => axisSize(axis, this.config, { B, T, P, past, dSae }));
  }

  private attention(layer: number): AttentionWeights {
    return this.weights.get(`attn.${layer}`, () => this.checkpoint.attention(layer));
  }

  private expert(layer: number, e: number): ExpertWeights {
    if (this.cacheExperts) return this.weights.get(`expert.${layer}.${e}`, () => this.checkpoint.expert(layer, e));
    // Every expert cannot stay cached (gpt-oss-20b: ~76 GB in float32), and a layer-order scan would
    // evict each before its next use: dequantise into one reused pair of buffers instead (fresh pages
    // are what costs here). Safe because experts run one at a time.
    const { hiddenSize: H, intermediateSize: I } = this.config;
    this.expertScratch ??= { gateUpW: new Float32Array(2 * I * H), downW: new Float32Array(H * I) };
    return this.checkpoint.expert(layer, e, this.expertScratch);
  }

  private unembed(): { finalNorm: Float32Array; lmHead: Float32Array } {
    return this.weights.get('unembed', () => ({ finalNorm: this.checkpoint.finalNorm(), lmHead: this.checkpoint.lmHead() }));
  }

  /** How experts are held: 'pairs', 'f32' or 'both' in per-layer sessions, or 'stream'. */
  get expertPath(): 'pairs' | 'f32' | 'both' | 'stream' {
    const k = this.expertEncodings;
    return k.length === 2 ? 'both' : k.length === 1 ? k[0] : 'stream';
  }

  // ---- Read access for the reverse pass (engine/backward): the same weights the forward multiplies by.
  // An uncached expert lives in a reused buffer: use it before asking for the next one.
  attentionWeights(layer: number): AttentionWeights {
    return this.attention(layer);
  }

  expertWeights(layer: number, e: number): ExpertWeights {
    return this.expert(layer, e);
  }

  unembedWeights(): { finalNorm: Float32Array; lmHead: Float32Array } {
    return this.unembed();
  }

  /** a [M, K] times b [K, N] (or b^T for b [N, K] when transB), on onnxruntime: y [M, N]. */
  async matmul(a: Float32Array, M: number, K: number, b: Float32Array, N: number, transB = false): Promise<Float32Array> {
    if (M === 0) return new Float32Array(0);
    const session = await this.sessions.get(transB ? 'matmul-bt' : 'matmul', { capture: new Set(), intervene: new Set() });
    const out = await session.run({
      a: new ort.Tensor('float32', a, [M, K]),
      b: new ort.Tensor('float32', b, transB ? [N, K] : [K, N]),
    });
    return out['y'].data as Float32Array;
  }
  // ---- end of reverse-pass access

  /** Bytes of weights cached now. */
  get cachedWeightBytes(): number {
    return this.weights.bytes;
  }

  /**
   * A run's largest activations at once, in bytes: per layer the residual copies, q/k/v, scores and
   * pattern (with the sink column), expert inputs/outputs, captured hooks and interventions; with a
   * KV cache, the past and the present caches of every layer too.
   */
  estimateRunBytes(B: number, T: number, captures: readonly ResolvedHook[], P: number, past = 0, kv = false): number {
    const c = this.config;
    const tok = B * T;
    const S = past + T;
    const perLayer = 4 * (tok * c.hiddenSize * 8 + tok * (c.numHeads + 2 * c.numKvHeads) * c.headDim * 3 + 3 * B * c.numHeads * T * (S + 1)
      + tok * c.expertsPerToken * (2 * c.hiddenSize + 3 * c.intermediateSize));
    const captured = captures.reduce((n, h) => n + 4 * numel(this.hookDims(h, B, T, P, past)), 0);
    const logits = 4 * B * P * c.vocabSize * 2;
    const caches = kv ? 4 * 2 * c.numLayers * B * c.numKvHeads * c.headDim * (past + S) : 0;
    return perLayer + captured + logits + caches;
  }

  /** Validates a batch of token-id rows. */
  private checkBatch(batch: readonly (readonly number[])[]): void {
    if (batch.length === 0) throw new EngineError('empty batch: give at least one prompt');
    batch.forEach((row, b) => {
      if (row.length === 0) throw new EngineError(`prompt ${b} has no tokens`);
      if (row.length > this.maxTokens) {
        throw new EngineError(`prompt ${b} has ${row.length} tokens; the limit is ${this.maxTokens}`);
      }
      for (const id of row) {
        if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) {
          throw new EngineError(`prompt ${b} has token id ${id}; valid ids are 0..${this.config.vocabSize - 1}`);
        }
      }
    });
  }

  /**
   * Additive attention mask [T, past + T]: query i is absolute position past + i; causal over absolute
   * positions, plus the sliding window on sliding layers.
   */
  private mask(T: number, sliding: boolean, past = 0): Tensor {
    const S = past + T;
    const m = new Float32Array(T * S);
    const W = this.config.slidingWindow;
    for (let i = 0; i < T; i++) {
      const q = past + i;
      for (let j = 0; j < S; j++) if (j > q || (sliding && q - j >= W)) m[i * S + j] = -1e9;
    }
    return { data: m, dims: [T, S] };
  }

  /** Checks the KV-cache options of a run; returns the cached length P (0 without a past). */
  private checkKv(opts: RunOptions, lengths: number[], end: number): number {
    const c = this.config;
    const what = opts.past ? 'past (a KV cache)' : 'returnKv';
    if (opts.returnKv && (opts.startLayer !== undefined || opts.startResid)) {
      throw new EngineError('returnKv cannot be combined with startLayer/startResid: the cache would miss the layers before the start');
    }
    if (opts.returnKv && end < c.numLayers) {
      throw new EngineError(`returnKv needs every layer, but endLayer is ${end} of ${c.numLayers}: the cache would miss layers ${end}..${c.numLayers - 1}`);
    }
    if (lengths.some((n) => n !== lengths[0])) {
      throw new EngineError(`with ${what} every row must have the same length (a KV cache holds no padding); got lengths [${lengths}]: run rows of different lengths as separate batches`);
    }
    const past = opts.past;
    if (!past) return 0;
    const P = past.length;
    const B = lengths.length;
    if (!Number.isInteger(P) || P < 0) throw new EngineError(`past.length ${P} must be a non-negative integer`);
    if (past.layers.length !== c.numLayers) throw new EngineError(`past has ${past.layers.length} layers; this model has ${c.numLayers}`);
    const want = [B, c.numKvHeads, P, c.headDim];
    past.layers.forEach((l, i) => {
      for (const [name, t] of [['k', l.k], ['v', l.v]] as const) {
        if (t.dims.join() !== want.join() || t.data.length !== numel(want)) {
          throw new EngineError(`past layer ${i} ${name} has dims [${t.dims}] (${t.data.length} values), expected [${want}] (batch, KV heads, cached length, head dim)`);
        }
      }
    });
    if (P + lengths[0] > this.maxTokens) {
      throw new EngineError(`past of ${P} tokens plus ${lengths[0]} new tokens is ${P + lengths[0]} positions; the limit is ${this.maxTokens}`);
    }
    return P;
  }

  async run(batch: readonly (readonly number[])[], opts: RunOptions = {}): Promise<RunResult> {
    const cfg = this.config;
    this.checkBatch(batch);
    const B = batch.length;
    const lengths = batch.map((r) => r.length);
    const T = Math.max(...lengths);
    const starts = this.rowStarts(opts.startLayer, B);
    const start = Math.min(...starts);
    const end = opts.endLayer ?? cfg.numLayers;
    if (!Number.isInteger(end) || end < Math.max(...starts) || end > cfg.numLayers) {
      throw new EngineError(`endLayer ${end} is out of range; valid: ${Math.max(...starts)}..${cfg.numLayers}`);
    }
    const logitsMode = end < cfg.numLayers ? 'none' : (opts.logits ?? 'last');
    const P = logitsMode === 'all' ? T : 1;
    const kvMode = opts.past !== undefined || opts.returnKv === true;
    const past = kvMode ? this.checkKv(opts, lengths, end) : 0;

    const captures = expandHooks(opts.capture ?? [], cfg.numLayers);
    const ivs = resolveInterventions(opts.interventions ?? [], cfg.numLayers, (h) => this.hookDims(h, B, T, P, past));
    for (const r of opts.routing ?? []) this.checkRouting(r, B, T, past);
    const cache = new Map<string, Tensor>();
    const captureSet = new Set(captures.map((h) => h.name));
    const need = this.estimateRunBytes(B, T, captures, P, past, kvMode);
    if (need > this.memoryBudgetBytes) {
      const gib = (x: number) => (x / 2 ** 30).toFixed(2);
      throw new EngineError(`this run needs about ${gib(need)} GiB of activations (batch ${B} x ${T} tokens, ${captures.length} captured hooks), over the memory budget of ${gib(this.memoryBudgetBytes)} GiB; use fewer rows or tokens, capture fewer hooks, or raise memoryBudgetGb`);
    }

    let resid: Tensor;
    if (starts.some((s) => s > 0) || opts.startResid) {
      if (!opts.startResid) throw new EngineError(`startLayer ${Math.max(...starts)} needs startResid, the residual entering that layer`);
      const want = [B, T, cfg.hiddenSize];
      if (opts.startResid.dims.join() !== want.join()) {
        throw new EngineError(`startResid has dims [${opts.startResid.dims}], expected [${want}] (batch, padded length, hidden)`);
      }
      resid = { data: opts.startResid.data.slice(), dims: want };
    } else {
      const padId = cfg.padTokenId !== null && cfg.padTokenId < cfg.vocabSize ? cfg.padTokenId : 0;
      const ids = batch.flatMap((r) => [...r, ...new Array(T - r.length).fill(padId)]);
      resid = { data: this.checkpoint.embedRows(ids), dims: [B, T, cfg.hiddenSize] };
      const iv = ivs.get('hook_embed');
      if (iv) applyIntervention(resid, iv);
      if (captureSet.has('hook_embed')) cache.set('hook_embed', copy(resid));
    }

    const rope = ropeTables(cfg, T, past);
    const shared: LayerInputs = {
      cos: { data: rope.cos, dims: [T, rope.half] },
      sin: { data: rope.sin, dims: [T, rope.half] },
      masks: { sliding: this.mask(T, true, past), full: this.mask(T, false, past) },
      kv: kvMode ? { past: opts.past ?? null, present: [] } : null,
      scratch: this.idleScratch ?? new Scratch(),
    };
    this.idleScratch = null;
    try {
      for (let layer = start; layer < end; layer++) {
        if (opts.signal?.aborted) throw new EngineError('run cancelled');
        const active = starts.flatMap((s, b) => (s <= layer ? [b] : []));
        const full = active.length === B;
        const layerIvs = new Map([...ivs].filter(([, iv]) => iv.hook.layer === layer).map(([, iv]) => [iv.hook.spec.local, iv]));
        const step: LayerStep = {
          layer,
          capture: new Set(captures.filter((h) => h.layer === layer).map((h) => h.spec.local)),
          ivs: full ? layerIvs : new Map([...layerIvs].map(([k, iv]) => [k, selectIntervention(iv, active, B)])),
          routing: full ? (opts.routing ?? []) : remapRouting(opts.routing ?? [], active),
          posOffset: past,
          rows: full ? null : active,
        };
        const local = new Map<string, Tensor>();
        const out = await this.layerStep(step, full ? resid : selectRows(resid, active), full ? lengths : active.map((b) => lengths[b]), shared, local);
        if (full) resid = out;
        else scatterRows(resid, out, active);
        for (const [k, v] of local) cache.set(inBlock(layer, k), full ? v : scatterRows(zerosLike(v, B), v, active));
        opts.onProgress?.({ stage: 'layer', done: layer - start + 1, total: end - start });
      }

      let logits: Tensor | null = null;
      if (logitsMode !== 'none') {
        if (opts.signal?.aborted) throw new EngineError('run cancelled');
        logits = await this.runUnembed(resid, lengths, logitsMode, ivs, captureSet, cache);
        opts.onProgress?.({ stage: 'unembed', done: 1, total: 1 });
      }
      const result: RunResult = { lengths, length: T, logits, cache, resid };
      if (opts.returnKv) result.kv = { length: past + T, layers: shared.kv!.present };
      return result;
    } finally {
      if (shared.scratch.bytes <= KEPT_SCRATCH_BYTES) this.idleScratch = shared.scratch;
    }
  }

  /** One block on the rows that are active at this layer; captures go into `local` by local name. */
  private async layerStep(step: LayerStep, x: Tensor, lengths: number[], shared: LayerInputs, local: Map<string, Tensor>): Promise<Tensor> {
    const hook = async (name: string, t: Tensor): Promise<Tensor> => {
      const iv = step.ivs.get(name);
      if (iv) applyIntervention(t, iv);
      if (step.capture.has(name)) local.set(name, copy(t));
      return this.splice(step, name, t, local);
    };
    // x is this run's own residual (never the caller's), so only an intervention needs a copy first.
    const resid = await hook('hook_resid_pre', step.ivs.has('hook_resid_pre') ? copy(x) : x);
    const sliding = this.config.layerTypes[step.layer] === 'sliding_attention';
    const a = await this.runAttention(step, resid, shared, sliding ? shared.masks.sliding : shared.masks.full, local);
    const routed = this.route(step, a.routerLogits, local);
    const mlpOut = await this.runExperts(step, a.ln2, routed, lengths, local, shared.scratch);
    const mlp = await hook('hook_mlp_out', mlpOut);
    // resid_post = resid_mid + mlp_out, in place in the attention's resid_mid output (its capture is a separate output).
    const post = a.residMid.data;
    for (let i = 0; i < post.length; i++) post[i] += mlp.data[i];
    return hook('hook_resid_post', { data: post, dims: resid.dims });
  }

  /** The dictionary attached at this layer's hook `name`, if its hooks are captured or intervened on. */
  private async splice(step: LayerStep, name: string, t: Tensor, local: Map<string, Tensor>): Promise<Tensor> {
    const a = this.saes.get(inBlock(step.layer, name));
    if (!a) return t;
    const [actsName, errorName] = [saeLocal(name, 'hook_sae_acts'), saeLocal(name, 'hook_sae_error')];
    const req = { acts: step.ivs.get(actsName), error: step.ivs.get(errorName), captureActs: step.capture.has(actsName), captureError: step.capture.has(errorName) };
    if (!spliceWanted(req)) return t;
    const r = await spliceDictionary(t, a.runner, req);
    if (r.acts) local.set(actsName, r.acts);
    if (r.error) local.set(errorName, r.error);
    return r.out ?? t;
  }

  private rowStarts(startLayer: number | readonly number[] | undefined, B: number): number[] {
    const L = this.config.numLayers;
    const starts = Array.isArray(startLayer) ? [...startLayer] : new Array<number>(B).fill((startLayer as number | undefined) ?? 0);
    if (starts.length !== B) throw new EngineError(`startLayer has ${starts.length} entries for ${B} rows; give one number or one per row`);
    for (const s of starts) if (!Number.isInteger(s) || s < 0 || s > L) throw new EngineError(`startLayer ${s} is out of range; valid: 0..${L}`);
    return starts;
  }

  /** `past` > 0: positions are absolute, 0..past+T-1. */
  private checkRouting(r: RoutingIntervention, B: number, T: number, past = 0): void {
    const { numLayers, numExperts, expertsPerToken } = this.config;
    if (!Number.isInteger(r.layer) || r.layer < 0 || r.layer >= numLayers) {
      throw new EngineError(`routing intervention layer ${r.layer} is out of range; valid: 0..${numLayers - 1}`);
    }
    for (const e of [...(r.force ?? []), ...(r.forbid ?? [])]) {
      if (!Number.isInteger(e) || e < 0 || e >= numExperts) throw new EngineError(`expert ${e} is out of range; valid: 0..${numExperts - 1}`);
    }
    if ((r.force ?? []).length > expertsPerToken) throw new EngineError(`cannot force ${r.force!.length} experts; top-k is ${expertsPerToken}`);
    if (numExperts - (r.forbid ?? []).length < expertsPerToken) {
      throw new EngineError(`forbidding ${r.forbid!.length} of ${numExperts} experts leaves fewer than top-k = ${expertsPerToken}`);
    }
    if ((r.force ?? []).some((e) => (r.forbid ?? []).includes(e))) throw new EngineError('an expert cannot be both forced and forbidden');
    for (const b of r.rows ?? []) if (b < 0 || b >= B) throw new EngineError(`routing row ${b} is out of range; valid: 0..${B - 1}`);
    const where = past ? ` (absolute positions; 0..${past - 1} are cached and not recomputed)` : '';
    for (const p of r.positions ?? []) if (p < 0 || p >= past + T) throw new EngineError(`routing position ${p} is out of range; valid: 0..${past + T - 1}${where}`);
  }

  private async runAttention(step: LayerStep, x: Tensor, shared: LayerInputs, mask: Tensor, cache: Map<string, Tensor>) {
    const attnLocals = (s: Set<string> | Map<string, unknown>) =>
      new Set([...s.keys()].filter((l) => ATTN_STAGE.has(l)));
    const plan: HookPlan = { capture: attnLocals(step.capture), intervene: attnLocals(step.ivs) };
    const session = await this.sessions.get(shared.kv ? 'attention-kv' : 'attention', plan);
    const w = this.attention(step.layer);
    const feeds: Record<string, ort.Tensor> = {
      x: toOrt(x), cos: toOrt(shared.cos), sin: toOrt(shared.sin), mask: toOrt(mask),
    };
    if (shared.kv) {
      const { numKvHeads: nKV, headDim: d } = this.config;
      const empty = (): Tensor => ({ data: new Float32Array(0), dims: [x.dims[0], nKV, 0, d] });
      const all = shared.kv.past?.layers[step.layer];
      const past = !all ? { k: empty(), v: empty() } : step.rows ? { k: selectRows(all.k, step.rows), v: selectRows(all.v, step.rows) } : all;
      feeds['past_k'] = toOrt(past.k);
      feeds['past_v'] = toOrt(past.v);
    }
    for (const k of ATTENTION_WEIGHT_INPUTS) feeds[k] = new ort.Tensor('float32', w[k], weightDims(this.config, k));
    for (const local of plan.intervene) {
      const iv = step.ivs.get(local)!;
      feeds[interventionInput(local, 'mask')] = toOrt(iv.mask);
      feeds[interventionInput(local, 'value')] = toOrt(iv.value);
      feeds[interventionInput(local, 'add')] = toOrt(iv.add);
    }
    const out = await session.run(feeds);
    for (const local of plan.capture) cache.set(local, fromOrt(out[captureOutput(local)]));
    if (shared.kv) shared.kv.present[step.layer] = { k: fromOrt(out['present_k']), v: fromOrt(out['present_v']) };
    return { residMid: fromOrt(out['resid_mid']), ln2: fromOrt(out['ln2']), routerLogits: fromOrt(out['router_logits']) };
  }

  /** Top-k on raw router logits (forced experts first, forbidden never), softmax over the chosen k. */
  private route(step: LayerStep, logits: Tensor, cache: Map<string, Tensor>) {
    const { numExperts: E, expertsPerToken: k } = this.config;
    const [B, T] = logits.dims;
    const indices = new Int32Array(B * T * k);
    const weights = new Float32Array(B * T * k);
    const rules = step.routing.filter((r) => r.layer === step.layer);
    const order = new Array<number>(E);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const row = (b * T + t) * E;
        let chosen: number[];
        const applicable = rules.length === 0 ? rules : rules.filter((r) => !(r.rows && !r.rows.includes(b)) && !(r.positions && !r.positions.includes(t + step.posOffset)));
        if (applicable.length === 0) {
          // Plain top-k by insertion (k is small): descending logit, ties to the lower index.
          chosen = [];
          for (let e = 0; e < E; e++) {
            const v = logits.data[row + e];
            let at = chosen.length;
            while (at > 0 && logits.data[row + chosen[at - 1]] < v) at--;
            if (at < k) {
              chosen.splice(at, 0, e);
              if (chosen.length > k) chosen.pop();
            }
          }
        } else {
          const force = new Set(applicable.flatMap((r) => r.force ?? []));
          const forbid = new Set(applicable.flatMap((r) => r.forbid ?? []));
          for (let e = 0; e < E; e++) order[e] = e;
          // Forced experts first, then descending logit; ties to the lower index, like a stable sort.
          order.sort((p, q) => {
            const fp = force.has(p) ? 1 : 0;
            const fq = force.has(q) ? 1 : 0;
            if (fp !== fq) return fq - fp;
            return logits.data[row + q] - logits.data[row + p] || p - q;
          });
          chosen = order.filter((e) => !forbid.has(e)).slice(0, k);
        }
        let max = -Infinity;
        for (const e of chosen) max = Math.max(max, logits.data[row + e]);
        let sum = 0;
        const ex = chosen.map((e) => {
          const v = Math.exp(logits.data[row + e] - max);
          sum += v;
          return v;
        });
        for (let j = 0; j < k; j++) {
          indices[(b * T + t) * k + j] = chosen[j];
          weights[(b * T + t) * k + j] = ex[j] / sum;
        }
      }
    }
    const w: Tensor = { data: weights, dims: [B, T, k] };
    const wIv = step.ivs.get('mlp.hook_expert_weights');
    if (wIv) applyIntervention(w, wIv);
    if (step.capture.has('mlp.hook_expert_indices')) cache.set('mlp.hook_expert_indices', { data: Float32Array.from(indices), dims: [B, T, k] });
    if (step.capture.has('mlp.hook_expert_weights')) cache.set('mlp.hook_expert_weights', { data: weights.slice(), dims: [B, T, k] });
    return { indices, weights: w.data };
  }

  private async runExperts(
    step: LayerStep, ln2: Tensor, routed: { indices: Int32Array; weights: Float32Array },
    lengths: number[], cache: Map<string, Tensor>, scratch: Scratch,
  ): Promise<Tensor> {
    const { numExperts: E, expertsPerToken: k, hiddenSize: H, intermediateSize: I } = this.config;
    const [B, T] = ln2.dims;
    const expertLocals = ['mlp.hook_pre', 'mlp.hook_post'];
    const plan: HookPlan = {
      capture: new Set(expertLocals.filter((l) => step.capture.has(l))),
      intervene: new Set(expertLocals.filter((l) => step.ivs.has(l))),
    };
    // [B, T, E, H] is only built when asked for; summing it over E is only needed when it was intervened on.
    const outIv = step.ivs.get('mlp.hook_expert_out');
    const expertOut = outIv || step.capture.has('mlp.hook_expert_out') ? new Float32Array(B * T * E * H) : null;
    const mlp = scratch.zeroF64('mlp', B * T * H);
    const neuronIvs = new Map([...plan.intervene].map((l) => {
      const iv = step.ivs.get(l)!;
      const full = [B, T, E, I];
      return [l, { mask: expandTo(iv.mask, full), value: expandTo(iv.value, full), add: expandTo(iv.add, full) }];
    }));
    // Dispatch: the (token, slot) pairs routed to each expert; padded positions are skipped.
    const slots: number[][] = Array.from({ length: E }, () => []);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < lengths[b]; t++) for (let j = 0; j < k; j++) slots[routed.indices[(b * T + t) * k + j]].push((b * T + t) * k + j);
    }
    // The routed (token, expert) pairs in expert order: row n of the stacked expert inputs.
    const pairs = slots.flatMap((mine, e) => mine.map((s) => ({ tok: Math.floor(s / k), e, s })));
    const neuronCaps = new Map([...plan.capture].map((l) => [l, new Float32Array(B * T * E * I)]));
    // Rows [pairs[from..from+N)] of a [B, T, E, I] tensor, and back.
    const gatherNeurons = (full: Tensor, from: number, N: number): ort.Tensor => {
      const rows = new Float32Array(N * I);
      for (let n = 0; n < N; n++) {
        const { tok, e } = pairs[from + n];
        rows.set(full.data.subarray((tok * E + e) * I, (tok * E + e + 1) * I), n * I);
      }
      return new ort.Tensor('float32', rows, [N, I]);
    };
    const scatterNeurons = (out: ort.InferenceSession.OnnxValueMapType, from: number, N: number) => {
      for (const [local, buf] of neuronCaps) {
        const c = out[captureOutput(local)].data as Float32Array;
        for (let n = 0; n < N; n++) {
          const { tok, e } = pairs[from + n];
          buf.set(c.subarray(n * I, (n + 1) * I), (tok * E + e) * I);
        }
      }
    };
    const ivFeeds = (feeds: Record<string, ort.Tensor>, from: number, N: number) => {
      for (const [local, full] of neuronIvs) {
        for (const part of ['mask', 'value', 'add'] as const) feeds[interventionInput(local, part)] = gatherNeurons(full[part], from, N);
      }
    };
    const inputRows = (from: number, N: number, into = new Float32Array(N * H)): Float32Array => {
      const x = into;
      for (let n = 0; n < N; n++) x.set(ln2.data.subarray(pairs[from + n].tok * H, (pairs[from + n].tok + 1) * H), n * H);
      return x;
    };

    // y: [pairs, H], each expert's output before its routing weight.
    let y: Float32Array;
    if (this.packed) {
      // Per-layer sessions: every expert's gate_up in one call (per encoding), the activation (and
      // neuron hooks) on all rows in one call, every expert's down likewise; all on stacked rows in
      // reused buffers, which onnxruntime reads and writes in place.
      const P = pairs.length;
      const spans: ExpertSpan[] = [];
      for (let e = 0, start = 0; e < E; start += slots[e].length, e++) spans.push({ start, count: slots[e].length });
      const x = inputRows(0, P, scratch.f32('expert.x', P * H));
      const h = scratch.f32('expert.h', P * 2 * I);
      await this.packed.run(step.layer, 'gateUp', x, h, spans, H, 2 * I);
      const feeds: Record<string, ort.Tensor> = { h: new ort.Tensor('float32', h, [P, 2 * I]) };
      ivFeeds(feeds, 0, P);
      const act = scratch.f32('expert.act', P * I);
      const fetches: Record<string, ort.Tensor | null> = { act: new ort.Tensor('float32', act, [P, I]) };
      for (const local of plan.capture) fetches[captureOutput(local)] = null;
      const actOut = await (await this.sessions.get('expert-act', plan)).run(feeds, fetches);
      scatterNeurons(actOut, 0, P);
      y = scratch.f32('expert.y', P * H);
      await this.packed.run(step.layer, 'down', act, y, spans, I, H);
    } else {
      const session = await this.sessions.get('expert', plan);
      y = new Float32Array(pairs.length * H);
      for (let e = 0, from = 0; e < E; from += slots[e].length, e++) {
        const N = slots[e].length;
        if (N === 0) continue;
        const w = this.expert(step.layer, e);
        const feeds: Record<string, ort.Tensor> = {
          x: new ort.Tensor('float32', inputRows(from, N), [N, H]),
          gateUpW: new ort.Tensor('float32', w.gateUpW, [2 * I, H]),
          gateUpB: new ort.Tensor('float32', w.gateUpB, [2 * I]),
          downW: new ort.Tensor('float32', w.downW, [H, I]),
          downB: new ort.Tensor('float32', w.downB, [H]),
        };
        ivFeeds(feeds, from, N);
        const out = await session.run(feeds);
        scatterNeurons(out, from, N);
        y.set(out['y'].data as Float32Array, from * H);
      }
    }

    pairs.forEach(({ tok, e, s }, n) => {
      const wt = routed.weights[s];
      if (expertOut) {
        const o = (tok * E + e) * H;
        for (let h = 0; h < H; h++) expertOut[o + h] = wt * y[n * H + h];
      }
      if (!outIv) for (let h = 0; h < H; h++) mlp[tok * H + h] += wt * y[n * H + h];
    });
    for (const [local, buf] of neuronCaps) cache.set(local, { data: buf, dims: [B, T, E, I] });
    if (expertOut) {
      const t: Tensor = { data: expertOut, dims: [B, T, E, H] };
      if (outIv) applyIntervention(t, outIv);
      if (step.capture.has('mlp.hook_expert_out')) cache.set('mlp.hook_expert_out', t);
    }
    if (expertOut && outIv) {
      for (let tok = 0; tok < B * T; tok++) {
        for (let e = 0; e < E; e++) {
          const o = (tok * E + e) * H;
          for (let h = 0; h < H; h++) mlp[tok * H + h] += expertOut[o + h];
        }
      }
    }
    return { data: Float32Array.from(mlp), dims: [B, T, H] };
  }

  private async runUnembed(
    resid: Tensor, lengths: number[], mode: 'last' | 'all', ivs: Map<string, ResolvedIntervention>,
    captureSet: Set<string>, cache: Map<string, Tensor>,
  ): Promise<Tensor> {
    const [B, T, H] = resid.dims;
    let x: Tensor = resid;
    if (mode === 'last') {
      const d = new Float32Array(B * H);
      for (let b = 0; b < B; b++) d.set(resid.data.subarray((b * T + lengths[b] - 1) * H, (b * T + lengths[b]) * H), b * H);
      x = { data: d, dims: [B, 1, H] };
    }
    const locals = ['ln_final.hook_normalized', 'hook_logits'];
    const plan: HookPlan = {
      capture: new Set(locals.filter((l) => captureSet.has(l))),
      intervene: new Set(locals.filter((l) => ivs.has(l))),
    };
    const session = await this.sessions.get('unembed', plan);
    const w = this.unembed();
    const feeds: Record<string, ort.Tensor> = {
      x: toOrt(x),
      finalNorm: new ort.Tensor('float32', w.finalNorm, [H]),
      lmHead: new ort.Tensor('float32', w.lmHead, [this.config.vocabSize, H]),
    };
    for (const local of plan.intervene) {
      const iv = ivs.get(local)!;
      feeds[interventionInput(local, 'mask')] = toOrt(iv.mask);
      feeds[interventionInput(local, 'value')] = toOrt(iv.value);
      feeds[interventionInput(local, 'add')] = toOrt(iv.add);
    }
    const out = await session.run(feeds);
    for (const local of plan.capture) cache.set(local, fromOrt(out[captureOutput(local)]));
    return fromOrt(out['logits']);
  }
}

const ATTN_STAGE = new Set([
  'ln1.hook_normalized', 'attn.hook_q', 'attn.hook_k', 'attn.hook_v', 'attn.hook_rot_q', 'attn.hook_rot_k',
  'attn.hook_attn_scores', 'attn.hook_pattern', 'attn.hook_sink', 'attn.hook_z', 'attn.hook_result',
  'hook_attn_out', 'hook_resid_mid', 'ln2.hook_normalized', 'mlp.hook_router_logits',
]);

function weightDims(c: GptOssConfig, k: (typeof ATTENTION_WEIGHT_INPUTS)[number]): number[] {
  const { hiddenSize: H, numHeads: nH, numKvHeads: nKV, headDim: d, numExperts: E } = c;
  switch (k) {
    case 'inputNorm': case 'postNorm': case 'oB': return [H];
    case 'qW': return [nH * d, H];
    case 'qB': return [nH * d];
    case 'kW': case 'vW': return [nKV * d, H];
    case 'kB': case 'vB': return [nKV * d];
    case 'oW': return [H, nH * d];
    case 'sinks': return [nH];
    case 'routerW': return [E, H];
    case 'routerB': return [E];
  }
}

