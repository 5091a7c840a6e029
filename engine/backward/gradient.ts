// Gradients of a scalar metric of the last-position logits w.r.t. any hook in the closed list.
// The forward runs on the engine as usual (same graphs, same interventions); the reverse pass walks
// the layers from the last to the earliest one asked for, reading each layer's forward tensors:
// kept from the forward when they fit the memory budget, otherwise recomputed one layer at a time
// from the residual entering it (the forward then keeps only those residuals). A run that fits
// neither way is refused before anything runs.
import { inBlock } from '../hook-address.ts';
import { EngineError, type GptOssModel, type Progress } from '../model.ts';
import { expandHooks, resolveHook, type ResolvedHook } from '../hooks.ts';
import { resolveInterventions, type Intervention, type RoutingIntervention } from '../intervention.ts';
import { ropeTables } from '../rope.ts';
import { numel, type Tensor } from '../tensor.ts';
import { HookGrads } from './hook-grads.ts';
import { addRmsNormBackward } from './kernels.ts';
import { AFTER_Z, layerBackward, SAVED_HOOKS, type SavedLayer } from './layer.ts';
import { checkMetric, metricWithGrad, type LogitMetric } from './metric.ts';

export interface GradientOptions {
  metric: LogitMetric;
  /** Hooks (names or `*` patterns) whose gradients to return. */
  grads: readonly string[];
  /** Hooks whose activations to return too (as RunOptions.capture). */
  capture?: readonly string[];
  interventions?: readonly Intervention[];
  /** Routing interventions of the forward; the selection they produce is held fixed like any other. */
  routing?: readonly RoutingIntervention[];
  /** Recompute every layer's forward tensors during the reverse pass even when they would fit (default: only when needed). */
  recompute?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: Progress | { stage: 'backward'; done: number; total: number }) => void;
}

export interface GradientResult {
  /** The metric of each row. */
  metric: number[];
  /** Last-position logits [B, 1, V]. */
  logits: Tensor;
  /** d metric(row b) / d hook, by full hook name, with the hook's shape (P = 1: last positions). */
  grads: Map<string, Tensor>;
  /** Captured activations (as RunResult.cache). */
  cache: Map<string, Tensor>;
  lengths: number[];
  length: number;
  /** Whether the layers' forward tensors were recomputed during the reverse pass. */
  recomputed: boolean;
}

/** Hooks with no gradient: outputs of a discrete choice or values nothing downstream reads. */
const NO_GRADIENT: Record<string, string> = {
  'attn.hook_sink': 'the sink probability is dropped before V, so nothing downstream depends on it (its effect is in attn.hook_attn_scores)',
  'mlp.hook_expert_indices': 'the expert choice is discrete and held fixed; take the gradient at mlp.hook_router_logits',
};

/** Resolves the hooks to differentiate, refusing those without a gradient. */
export function gradientHooks(patterns: readonly string[], numLayers: number): ResolvedHook[] {
  if (patterns.length === 0) throw new EngineError('name at least one hook to take the gradient at, e.g. blocks.0.hook_resid_pre');
  const hooks = expandHooks(patterns, numLayers);
  for (const h of hooks) {
    const why = NO_GRADIENT[h.spec.local];
    if (why) throw new EngineError(`no gradient at "${h.name}": ${why}`);
  }
  return hooks;
}

const gib = (x: number) => (x / 2 ** 30).toFixed(2);

export async function gradients(model: GptOssModel, batch: readonly (readonly number[])[], opts: GradientOptions): Promise<GradientResult> {
  const cfg = model.config;
  const L = cfg.numLayers;
  const B = batch.length;
  const V = cfg.vocabSize;
  const H = cfg.hiddenSize;
  const wanted = gradientHooks(opts.grads, L);
  checkMetric(opts.metric, B, V);
  if (B === 0) throw new EngineError('empty batch: give at least one prompt');
  const T = Math.max(...batch.map((r) => r.length));
  // The earliest layer the reverse pass must reach (global hooks: hook_embed needs layer 0, the rest none).
  const first = Math.min(L, ...wanted.map((h) => (h.layer ?? (h.name === 'hook_embed' ? 0 : L))));
  const dimsOf = (h: ResolvedHook) => model.hookDims(h, B, T, 1);
  const ivs = resolveInterventions(opts.interventions ?? [], L, dimsOf);
  const userCaps = expandHooks(opts.capture ?? [], L);

  // Memory: saved tensors per layer, the reverse pass's float64 working set, and the returned gradients.
  const savedOf = (layer: number) => SAVED_HOOKS.map((s) => resolveHook(inBlock(layer, s), L));
  const bytes = (hs: ResolvedHook[]) => hs.reduce((n, h) => n + 4 * numel(dimsOf(h)), 0);
  const perLayerSaved = bytes(savedOf(0));
  const { numHeads: nH, numKvHeads: nKV, headDim: d, numExperts: E, intermediateSize: I } = cfg;
  const working = 8 * (2 * B * nH * T * T + 2 * B * T * nH * d + 2 * B * T * nKV * d + 6 * B * T * H + B * T * E)
    + 8 * Math.max(0, ...wanted.map((h) => numel(dimsOf(h)))) + (wanted.some((h) => h.spec.local.startsWith('mlp.hook_p')) ? 16 * B * T * E * I : 0);
  const returned = bytes(wanted);
  const layersKept = L - first;
  const keepAll = model.estimateRunBytes(B, T, [...userCaps, ...Array.from({ length: layersKept }, (_, i) => savedOf(first + i)).flat()], 1)
    + working + returned;
  const recomputeNeed = model.estimateRunBytes(B, T, [...userCaps, ...savedOf(0)], 1) + layersKept * 4 * B * T * H + working + returned;
  const budget = model.memoryBudgetBytes;
  const recompute = opts.recompute === true || keepAll > budget;
  if (recompute && recomputeNeed > budget) {
    throw new EngineError(`this gradient needs about ${gib(recomputeNeed)} GiB even recomputing each layer (batch ${B} x ${T} tokens, gradients at ${wanted.length} hooks from layer ${first}), over the memory budget of ${gib(budget)} GiB; use fewer rows or tokens, fewer or later hooks, or raise memoryBudgetGb`);
  }

  const base = { interventions: opts.interventions, routing: opts.routing, signal: opts.signal };
  const cache = new Map<string, Tensor>();
  const saved = new Map<number, SavedLayer>();
  const resids = new Map<number, Tensor>();
  let finalResid: Tensor;
  let logits: Tensor;
  let lengths: number[];
  const takeSaved = (layer: number, c: Map<string, Tensor>): SavedLayer =>
    Object.fromEntries(SAVED_HOOKS.map((s) => [s, c.get(inBlock(layer, s))!])) as SavedLayer;
  const userNames = new Set(userCaps.map((h) => h.name));

  if (!recompute) {
    const savedNames = Array.from({ length: layersKept }, (_, i) => savedOf(first + i).map((h) => h.name)).flat();
    const r = await model.run(batch, { ...base, capture: [...userNames, ...savedNames], logits: 'last', onProgress: opts.onProgress });
    for (let l = first; l < L; l++) saved.set(l, takeSaved(l, r.cache));
    for (const n of userNames) cache.set(n, r.cache.get(n)!);
    finalResid = r.resid;
    logits = r.logits!;
    lengths = r.lengths;
  } else {
    // Layer by layer, keeping the residual entering each layer (before its resid_pre intervention).
    const capsAt = (layer: number | null) => userCaps.filter((h) => h.layer === layer).map((h) => h.name);
    let r = await model.run(batch, { ...base, endLayer: 0, capture: capsAt(null).filter((n) => n === 'hook_embed') });
    for (const [n, t] of r.cache) cache.set(n, t);
    for (let l = 0; l < L; l++) {
      if (l >= first) resids.set(l, r.resid);
      const last = l === L - 1;
      r = await model.run(batch, {
        ...base, startLayer: l, startResid: r.resid, endLayer: l + 1, logits: last ? 'last' : 'none',
        capture: [...capsAt(l), ...(last ? capsAt(null).filter((n) => n !== 'hook_embed') : [])],
      });
      for (const [n, t] of r.cache) cache.set(n, t);
      opts.onProgress?.({ stage: 'layer', done: l + 1, total: L });
    }
    finalResid = r.resid;
    logits = r.logits!;
    lengths = r.lengths;
  }

  // Seed: d metric / d logits at each row's last real position.
  const metric: number[] = [];
  const gLogits = new Float64Array(B * V);
  for (let b = 0; b < B; b++) {
    const m = metricWithGrad(opts.metric, b, logits.data.subarray(b * V, (b + 1) * V));
    metric.push(m.value);
    gLogits.set(m.grad, b * V);
  }
  const hooks = new HookGrads(new Set(wanted.map((h) => h.name)), ivs);
  hooks.at('hook_logits', gLogits, [B, 1, V]);
  const un = model.unembedWeights();
  const gLnf = Float64Array.from(await model.matmul(Float32Array.from(gLogits), B, V, un.lmHead, H));
  hooks.at('ln_final.hook_normalized', gLnf, [B, 1, H]);
  const xLast = new Float32Array(B * H);
  for (let b = 0; b < B; b++) xLast.set(finalResid.data.subarray((b * T + lengths[b] - 1) * H, (b * T + lengths[b]) * H), b * H);
  const gLast = new Float64Array(B * H);
  addRmsNormBackward(xLast, un.finalNorm, gLnf, gLast, B, H, cfg.rmsNormEps);
  let g: Float64Array = new Float64Array(B * T * H);
  for (let b = 0; b < B; b++) g.set(gLast.subarray(b * H, (b + 1) * H), (b * T + lengths[b] - 1) * H);

  const rope = ropeTables(cfg, T);
  // The earliest block's attention internals are skipped when nothing below its hook_z is wanted.
  const stopAfterZ = !wanted.some((h) => h.name === 'hook_embed' || (h.layer === first && !AFTER_Z.has(h.spec.local)));
  for (let l = L - 1; l >= first; l--) {
    if (opts.signal?.aborted) throw new EngineError('gradient cancelled');
    let layerSaved = saved.get(l);
    if (!layerSaved) {
      const r = await model.run(batch, { ...base, startLayer: l, startResid: resids.get(l)!, endLayer: l + 1, logits: 'none', capture: savedOf(l).map((h) => h.name) });
      layerSaved = takeSaved(l, r.cache);
    }
    g = await layerBackward({
      cfg, layer: l, lengths, dims: [B, T, H], attn: model.attentionWeights(l), expert: (e) => model.expertWeights(l, e),
      rope, saved: layerSaved, hooks, matmul: (a, M, K, b, N, transB) => model.matmul(a, M, K, b, N, transB),
      stopAfterZ: l === first && stopAfterZ,
    }, g);
    saved.delete(l);
    resids.delete(l);
    opts.onProgress?.({ stage: 'backward', done: L - l, total: L - first });
  }
  if (first === 0) hooks.at('hook_embed', g, [B, T, H]);
  return { metric, logits, grads: hooks.out, cache, lengths, length: T, recomputed: recompute };
}
