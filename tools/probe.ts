// Linear probes: does the activation at a hook (one layer or a sweep of layers) linearly encode a
// label of the prompt? Logistic regression (binary or multinomial) for class labels, ridge for
// numbers, on standardised features; held-out accuracy / R² per layer next to the majority-class
// (or mean) baseline and a shuffled-label control trained the same way, so a probe that only
// memorises shows up as one. The best layer's direction is stored in the original residual basis.
import { blockHook } from '../engine/hook-address.ts';
import { z } from 'zod';
import { BLOCK_HOOKS } from '../engine/hooks.ts';
import { Rng } from '../engine/rng.ts';
import { checkCancelled, defineTool, ToolError, type ToolContext } from './define.ts';
import { columnStats, dot, logistic, mat, predictClasses, ridge, rowSpace, standardise, type Mat } from './linalg.ts';
import { runAndRecord } from './runs.ts';
import { ExperimentId, RunIds } from './output.ts';
import type { EncodedPrompt } from './session.ts';
import { checkLayers, resolveHooks, siteList } from './sites.ts';

// ---------------------------------------------------------------------------------------------
// Shared by the activation-reading analysis tools (probe, PCA): which hook, which positions.

export const ActivationPosition = z
  .union([
    z.literal('last'),
    z.literal('mean'),
    z.number().int(),
    z.object({ token: z.string().min(1) }).strict(),
  ])
  .default('last')
  .describe('which activation of each prompt: "last" token, "mean" over all tokens, a token index (negative counts from the end), or {"token": "word"} for every occurrence of that word (each occurrence is one sample; samples of one prompt stay on the same side of a split)');
export type ActivationPosition = z.infer<typeof ActivationPosition>;

export const ActivationHook = z
  .string()
  .min(1)
  .default('resid_post')
  .describe('a per-position hook of hidden width: resid_pre, resid_mid, resid_post, attn_out, mlp_out, ln1.hook_normalized, ln2.hook_normalized (each read as blocks.L.<hook> for the chosen layers), hook_embed, or a full name such as blocks.2.hook_resid_post');

const VECTOR_HOOKS = BLOCK_HOOKS.filter((h) => h.shape === '[B, T, H]').map((h) => h.local);

export interface HookTarget {
  /** Full hook name, e.g. blocks.2.hook_resid_post. */
  name: string;
  /** null for hook_embed. */
  layer: number | null;
  /** Short label for names: resid_post, embed, ... */
  short: string;
}

/** Resolves the hook argument and layers into the exact hooks to read. */
export function resolveHookTargets(hook: string, layers: readonly number[] | undefined, ctx: ToolContext): HookTarget[] {
  const cfg = ctx.session.config;
  const valid = `valid: ${VECTOR_HOOKS.map((l) => l.replace(/^hook_/, '')).join(', ')}, hook_embed, or a full name like blocks.0.hook_resid_post`;
  const h = hook.trim();
  if (h === 'hook_embed' || h === 'embed') {
    if (layers?.length) throw new ToolError('hook_embed has no layers; leave out "layers" (or probe blocks.0.hook_resid_pre, which is the same vector)');
    return [{ name: 'hook_embed', layer: null, short: 'embed' }];
  }
  if (h.startsWith('blocks.')) {
    const [resolved] = resolveHooks([h], cfg.numLayers);
    if (resolved.spec.shape !== '[B, T, H]') throw new ToolError(`hook "${h}" has shape ${resolved.spec.shape}; this tool reads one hidden-width vector per position; ${valid}`);
    if (layers?.length && !(layers.length === 1 && layers[0] === resolved.layer)) {
      throw new ToolError(`hook "${h}" names layer ${resolved.layer} but layers were given as [${layers.join(', ')}]; give a short hook name (e.g. "${resolved.spec.local.replace(/^hook_/, '')}") to sweep layers`);
    }
    return [{ name: h, layer: resolved.layer, short: resolved.spec.local.replace(/^hook_/, '').replace('.hook_', '_') }];
  }
  const local = VECTOR_HOOKS.find((l) => l === h || l === `hook_${h}`);
  if (!local) {
    const other = BLOCK_HOOKS.find((s) => s.local === h || s.local === `hook_${h}`);
    if (other) throw new ToolError(`hook "${h}" has shape ${other.shape}; this tool reads one hidden-width vector per position; ${valid}`);
    throw new ToolError(`unknown hook "${h}"; ${valid}`);
  }
  const ls = layers ?? [...Array(cfg.numLayers).keys()];
  if (ls.length === 0) throw new ToolError('layers is empty; give at least one layer');
  checkLayers(ls, cfg);
  return [...new Set(ls)].sort((a, b) => a - b).map((l) => ({ name: blockHook(l, local), layer: l, short: local.replace(/^hook_/, '').replace('.hook_', '_') }));
}

/** One probed vector: which example (prompt) it comes from and its position (-1 = mean over tokens). */
export interface Sample {
  example: number;
  position: number;
}

/** The samples of each prompt under a position rule. */
export function samplePositions(ctx: ToolContext, prompts: EncodedPrompt[], position: ActivationPosition): Sample[] {
  const out: Sample[] = [];
  if (typeof position === 'object') {
    const ids = new Set<number>();
    for (const w of [position.token, ` ${position.token}`]) {
      const enc = ctx.session.tokenizer.encode(w);
      if (enc.length === 1) ids.add(enc[0]);
    }
    if (ids.size === 0) throw new ToolError(`position token "${position.token}" is not a single token; give one word of the vocabulary`);
    const missing: number[] = [];
    prompts.forEach((p, i) => {
      const at = p.ids.flatMap((id, t) => (ids.has(id) ? [t] : []));
      if (at.length === 0) missing.push(i);
      for (const t of at) out.push({ example: i, position: t });
    });
    if (missing.length) {
      const show = missing.slice(0, 3).map((i) => `#${i} "${prompts[i].prompt}"`).join(', ');
      throw new ToolError(`position token "${position.token}" does not occur in ${missing.length} prompt(s), e.g. ${show}; every prompt must contain it`);
    }
    return out;
  }
  prompts.forEach((p, i) => {
    const n = p.ids.length;
    if (position === 'last') out.push({ example: i, position: n - 1 });
    else if (position === 'mean') out.push({ example: i, position: -1 });
    else {
      const q = position < 0 ? n + position : position;
      if (q < 0 || q >= n) throw new ToolError(`position ${position} is beyond prompt #${i} ("${p.prompt}", ${n} tokens); valid: 0..${n - 1} or -1..-${n}`);
      out.push({ example: i, position: q });
    }
  });
  return out;
}

/**
 * Runs the prompts in batches (stopping after the last layer needed) and returns, per hook, the
 * samples' vectors as a samples x hidden float64 matrix. Every prompt is recorded as a run.
 */
export async function gatherActivations(
  ctx: ToolContext, prompts: EncodedPrompt[], targets: HookTarget[], samples: Sample[], role: string, batch = 32,
): Promise<{ features: Map<string, Mat>; runIds: string[] }> {
  const H = ctx.session.config.hiddenSize;
  const features = new Map(targets.map((t) => [t.name, mat(samples.length, H)]));
  const endLayer = Math.max(0, ...targets.map((t) => (t.layer === null ? 0 : t.layer + 1)));
  const byExample = new Map<number, number[]>();
  samples.forEach((s, i) => byExample.set(s.example, [...(byExample.get(s.example) ?? []), i]));
  const runIds: string[] = [];
  for (let start = 0; start < prompts.length; start += batch) {
    checkCancelled(ctx, role);
    const chunk = prompts.slice(start, start + batch);
    const { result, runIds: ids } = await runAndRecord(ctx, chunk, { capture: targets.map((t) => t.name), logits: 'none', endLayer }, { role });
    runIds.push(...ids);
    for (const t of targets) {
      const act = result.cache.get(t.name)!;
      const T = act.dims[1];
      const X = features.get(t.name)!;
      chunk.forEach((p, b) => {
        for (const si of byExample.get(start + b) ?? []) {
          const pos = samples[si].position;
          const row = X.data.subarray(si * H, (si + 1) * H);
          if (pos >= 0) {
            const o = (b * T + pos) * H;
            for (let i = 0; i < H; i++) row[i] = act.data[o + i];
          } else {
            for (let tt = 0; tt < p.ids.length; tt++) {
              const o = (b * T + tt) * H;
              for (let i = 0; i < H; i++) row[i] += act.data[o + i];
            }
            for (let i = 0; i < H; i++) row[i] /= p.ids.length;
          }
        }
      });
    }
    ctx.onProgress?.({ done: Math.min(start + batch, prompts.length), total: prompts.length, message: `ran ${Math.min(start + batch, prompts.length)}/${prompts.length} prompts` });
  }
  return { features, runIds };
}

/** A store-safe name part. */
export function slug(s: string, max = 48): string {
  const out = s.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^_+|_+$/g, '');
  return (out || 'x').slice(0, max);
}

// ---------------------------------------------------------------------------------------------

export const probeInput = z.strictObject({
  examples: z.array(z.strictObject({
    prompt: z.string().min(1),
    label: z.union([z.string().min(1), z.number().finite()]).describe('a class name, or a number for regression'),
  })).min(1).max(5000).describe('labelled prompts, e.g. [{"prompt": "3 4 5", "label": "number"}, {"prompt": "Mary and John", "label": "name"}]'),
  hook: ActivationHook,
  layers: siteList(z.number().int(), 'layer').optional().describe('layers to sweep for a short hook name (default: every layer)'),
  position: ActivationPosition,
  task: z.enum(['classification', 'regression']).optional().describe('default: classification for string labels or labels that are all 0/1; regression for other numbers'),
  split: z.union([
    z.object({ folds: z.number().int().min(2).max(20).describe('k-fold cross-validation; held-out predictions of all folds are pooled') }).strict(),
    z.object({ testFraction: z.number().gt(0).lt(1).default(0.3).describe('share of prompts held out (stratified by class)') }).strict(),
  ]).default({ testFraction: 0.3 }).describe('how held-out accuracy is measured: {"testFraction": 0.3} (default) or {"folds": 5}; splits are by prompt, stratified by class'),
  seed: z.number().int().default(0).describe('seeds the split and the label shuffles'),
  l2: z.number().min(0).default(0.01).describe('L2 penalty on the standardised weights (objective: mean loss + l2/2 * |w|^2)'),
  sdFloor: z.number().min(0).max(100).default(2).describe('standardisation: features are centred and divided by max(own sd, sdFloor x mean sd over features): high-variance (outlier) dimensions are scaled down to unit variance, while rarely varying ones (a token code, a tiny offset) are not blown up into signal that does not generalise; 0 = plain per-feature z-scores, large = one common scale'),
  controls: z.number().int().min(1).max(20).default(1).describe('label permutations for the shuffled-label control (averaged)'),
  name: z.string().min(1).max(64).optional().describe('name for the stored direction(s): probe_<name>_<hook>_L<layer>[_<class>]; default from the class names. Reusing a name replaces the vectors'),
  batch: z.number().int().min(1).max(256).default(32).describe('prompts per forward pass'),
});
export type ProbeInput = z.infer<typeof probeInput>;

const ProbeLayer = z.object({
  layer: z.number().int().nullable().describe('null for hook_embed'),
  hook: z.string(),
  heldOut: z.number().describe('held-out accuracy (classification) or R² (regression)'),
  baseline: z.number().describe('majority-class accuracy, or R² of predicting the training mean'),
  shuffled: z.number().describe('the same probe trained and tested on shuffled labels'),
  train: z.number().describe('fit on the training part (accuracy or R²)'),
});
export type ProbeLayerResult = z.infer<typeof ProbeLayer>;

export const probeOutput = z.object({
  experimentId: ExperimentId,
  task: z.enum(['classification', 'regression']),
  metric: z.enum(['accuracy', 'r2']),
  classes: z.array(z.string()).nullable(),
  examples: z.number().int(),
  samples: z.number().int(),
  split: z.string(),
  layers: z.array(ProbeLayer).describe('one row per layer'),
  best: ProbeLayer,
  vectors: z.array(z.object({ name: z.string(), class: z.string().nullable(), bias: z.number(), norm: z.number() }))
    .describe('the best layer\'s direction(s), stored as named vectors (steer and ablate take them by name)'),
  runIds: RunIds,
});
export type ProbeResult = z.infer<typeof probeOutput>;

/** Per fold: train and test sample indices. */
interface Fold { train: number[]; test: number[] }

/** Splits examples (stratified by class for classification), then maps them to their samples. */
function makeFolds(exLabels: (number | null)[], samples: Sample[], split: ProbeInput['split'], seed: number): { folds: Fold[]; describe: string } {
  const rng = new Rng(seed);
  const N = exLabels.length;
  const groups = new Map<string, number[]>();
  exLabels.forEach((c, i) => groups.set(String(c), [...(groups.get(String(c)) ?? []), i]));
  const foldOf = new Array<number>(N).fill(0);
  let k: number;
  if ('folds' in split) {
    k = split.folds;
    if (k > N) throw new ToolError(`${k} folds need at least ${k} examples; there are ${N}`);
    let counter = rng.int(k);
    for (const members of groups.values()) for (const i of rng.shuffle(members)) foldOf[i] = counter++ % k;
  } else {
    k = 1;
    for (const members of groups.values()) {
      const sh = rng.shuffle(members);
      const nTest = exLabels[0] === null
        ? Math.min(Math.max(1, Math.round(N * split.testFraction)), N - 3)
        : Math.min(Math.max(1, Math.round(sh.length * split.testFraction)), sh.length - 1);
      sh.forEach((i, j) => (foldOf[i] = j < nTest ? 0 : -1));
    }
  }
  const folds: Fold[] = [];
  for (let f = 0; f < k; f++) {
    const fold: Fold = { train: [], test: [] };
    samples.forEach((s, i) => (foldOf[s.example] === f ? fold.test : fold.train).push(i));
    folds.push(fold);
  }
  return { folds, describe: 'folds' in split ? `${k}-fold cross-validation` : `held-out ${split.testFraction}` };
}

const rows = (X: Mat, idx: number[]): Mat => {
  const out = mat(idx.length, X.cols);
  idx.forEach((r, i) => out.data.set(X.data.subarray(r * X.cols, (r + 1) * X.cols), i * X.cols));
  return out;
};

function r2(y: number[], pred: number[], center: number): number {
  let sse = 0, sst = 0;
  const mean = center;
  y.forEach((v, i) => {
    sse += (v - pred[i]) ** 2;
    sst += (v - mean) ** 2;
  });
  return sst === 0 ? 0 : 1 - sse / sst;
}
const meanOf = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

interface Evaluation { heldOut: number; baseline: number; train: number }

/**
 * For each label set (the real labels, then shuffled controls): trains on each fold's training part
 * and scores the pooled held-out predictions. A fold's standardisation and row-space decomposition
 * depend only on its activations, so they are computed once and shared by all label sets.
 */
function evaluate(X: Mat, labelSets: number[][], folds: Fold[], task: 'classification' | 'regression', C: number, l2: number, sdFloor: number): Evaluation[] {
  const acc = labelSets.map(() => ({ yTest: [] as number[], pTest: [] as number[], bTest: [] as number[], train: 0 }));
  for (const f of folds) {
    const Xtr = rows(X, f.train);
    const { mean, sd } = columnStats(Xtr, sdFloor);
    const Str = standardise(Xtr, mean, sd);
    const Ste = standardise(rows(X, f.test), mean, sd);
    const rs = rowSpace(Str); // Str has centred columns
    labelSets.forEach((y, s) => {
      const a = acc[s];
      const ytr = f.train.map((i) => y[i]);
      const yte = f.test.map((i) => y[i]);
      if (task === 'classification') {
        const fit = logistic(rs, ytr, C, l2, { maxIter: 3000, tol: 1e-6 });
        const ptr = predictClasses(fit, Str);
        a.train += ptr.filter((p, i) => p === ytr[i]).length / ytr.length;
        a.pTest.push(...predictClasses(fit, Ste));
        const counts = new Array<number>(C).fill(0);
        ytr.forEach((c) => counts[c]++);
        const majority = counts.indexOf(Math.max(...counts));
        a.bTest.push(...yte.map(() => majority));
      } else {
        const fit = ridge(Str, ytr, l2, rs);
        const pred = (S: Mat) => Array.from({ length: S.rows }, (_, i) => dot(fit.w, S.data.subarray(i * S.cols, (i + 1) * S.cols)) + fit.bias);
        a.train += r2(ytr, pred(Str), meanOf(ytr));
        a.pTest.push(...pred(Ste));
        a.bTest.push(...yte.map(() => meanOf(ytr)));
      }
      a.yTest.push(...yte);
    });
  }
  return acc.map((a) => {
    if (task === 'classification') {
      const score = (p: number[]) => p.filter((v, i) => v === a.yTest[i]).length / a.yTest.length;
      return { heldOut: score(a.pTest), baseline: score(a.bTest), train: a.train / folds.length };
    }
    const c = meanOf(a.yTest);
    return { heldOut: r2(a.yTest, a.pTest, c), baseline: r2(a.yTest, a.bTest, c), train: a.train / folds.length };
  });
}

export const probeTool = defineTool({
  name: 'train_probe',
  description: 'Train linear probes for a label of each prompt on activations at a hook, for one layer or a sweep of layers (e.g. hook "resid_post", layers [0..L-1]): logistic regression for class labels, ridge for numeric labels, on standardised features. Reports per layer the held-out accuracy (or R²) next to the majority-class (or mean) baseline and a shuffled-label control trained the same way (a probe is only evidence when it beats both), stores the best layer\'s direction(s) as vectors (kind "probe", in the original activation basis: score = vec . x + meta.bias) and an experiment with one row per layer.',
  readsText: true,
  limits: { prompts: ['examples.*.prompt'], sweep: { batch: ['examples'], layers: ['layers'] } },
  input: probeInput,
  output: probeOutput,
  async run(input, ctx): Promise<ProbeResult> {
    const labels = input.examples.map((e) => e.label);
    const allNumbers = labels.every((l) => typeof l === 'number');
    if (!allNumbers && labels.some((l) => typeof l === 'number')) {
      throw new ToolError('labels mix numbers and strings; give class names (strings) for classification or numbers for regression');
    }
    const task = input.task ?? (allNumbers && !labels.every((l) => l === 0 || l === 1) ? 'regression' : 'classification');
    if (task === 'regression' && !allNumbers) throw new ToolError('regression needs numeric labels; these are class names');
    const N = input.examples.length;

    let classes: string[] | null = null;
    let y: number[];
    if (task === 'classification') {
      const names = labels.map(String);
      classes = [...new Set(names)].sort((a, b) => (allNumbers ? Number(a) - Number(b) : a.localeCompare(b)));
      if (classes.length < 2) throw new ToolError(`every example has the label "${classes[0]}"; a classification probe needs at least two classes`);
      const counts = classes.map((c) => names.filter((n) => n === c).length);
      const thin = classes.filter((_, i) => counts[i] < 2);
      if (thin.length) throw new ToolError(`too few examples: class(es) ${thin.map((c) => `"${c}"`).join(', ')} have only one example; each class needs at least 2 (one to train on, one to test), and a useful probe needs many more`);
      if (N < 4) throw new ToolError(`too few examples: ${N}; give at least 4 (and preferably dozens per class)`);
      y = names.map((n) => classes!.indexOf(n));
    } else {
      y = labels as number[];
      if (N < 5) throw new ToolError(`too few examples: ${N}; a regression probe needs at least 5 (and preferably dozens)`);
      if (y.every((v) => v === y[0])) throw new ToolError(`every example has the label ${y[0]}; a regression probe needs labels that vary`);
    }
    const C = classes?.length ?? 0;

    const targets = resolveHookTargets(input.hook, input.layers, ctx);
    const prompts = ctx.session.encodeAll(input.examples.map((e) => e.prompt), 'examples');
    const samples = samplePositions(ctx, prompts, input.position);
    const ys = samples.map((s) => y[s.example]);
    const { folds, describe } = makeFolds(task === 'classification' ? y : y.map(() => null), samples, input.split, input.seed);
    for (const f of folds) {
      if (f.train.length < 2 || f.test.length < 1) throw new ToolError(`too few examples for this split (${N} examples); give more examples or fewer folds`);
    }
    const { features, runIds } = await gatherActivations(ctx, prompts, targets, samples, 'train_probe', input.batch);

    // Shuffled-label controls: permute the labels over examples (samples of a prompt keep one label).
    const shuffles = Array.from({ length: input.controls }, (_, c) => {
      const perm = new Rng(input.seed * 7919 + 104729 + c).shuffle([...Array(N).keys()]);
      return samples.map((s) => y[perm[s.example]]);
    });

    const layerResults: ProbeLayerResult[] = [];
    for (const [i, t] of targets.entries()) {
      checkCancelled(ctx, 'train_probe');
      const X = features.get(t.name)!;
      const [real, ...controls] = evaluate(X, [ys, ...shuffles], folds, task, C, input.l2, input.sdFloor);
      const shuffled = meanOf(controls.map((c) => c.heldOut));
      layerResults.push({ layer: t.layer, hook: t.name, heldOut: real.heldOut, baseline: real.baseline, shuffled, train: real.train });
      ctx.onProgress?.({ done: i + 1, total: targets.length, message: `probed ${t.name}: ${real.heldOut.toFixed(3)} (shuffled ${shuffled.toFixed(3)})` });
    }
    const best = layerResults.reduce((a, b) => (b.heldOut > a.heldOut ? b : a));
    const bestTarget = targets.find((t) => t.name === best.hook)!;

    // The stored direction: a fit on every example at the best layer, mapped back from the
    // standardised basis: w.(x - mu)/sd + b = (w/sd).x + (b - sum w mu/sd).
    const X = features.get(best.hook)!;
    const { mean, sd } = columnStats(X, input.sdFloor);
    const S = standardise(X, mean, sd);
    const toOriginal = (w: Float64Array, b: number) => {
      const vec = new Float32Array(w.length);
      let bias = b;
      for (let j = 0; j < w.length; j++) {
        vec[j] = w[j] / sd[j];
        bias -= (w[j] * mean[j]) / sd[j];
      }
      return { vec, bias };
    };
    const directions: { cls: string | null; vec: Float32Array; bias: number }[] = [];
    if (task === 'classification') {
      const fit = logistic(S, ys, C, input.l2, { maxIter: 3000, tol: 1e-6 });
      if (C === 2) directions.push({ cls: classes![1], ...toOriginal(fit.W[0], fit.bias[0]) });
      else fit.W.forEach((w, k) => directions.push({ cls: classes![k], ...toOriginal(w, fit.bias[k]) }));
    } else {
      const fit = ridge(S, ys, input.l2);
      directions.push({ cls: null, ...toOriginal(fit.w, fit.bias) });
    }

    const metric = task === 'classification' ? 'accuracy' : 'r2';
    const base = slug(input.name ?? (classes ? classes.join('_vs_') : 'value'));
    const layerTag = bestTarget.layer === null ? '' : `_L${bestTarget.layer}`;
    const vectorName = (cls: string | null) => `probe_${base}_${slug(bestTarget.short)}${layerTag}${cls !== null && C > 2 ? `_${slug(cls, 32)}` : ''}`;
    const positionText = typeof input.position === 'object' ? `token:${input.position.token}` : String(input.position);

    const experimentId = await ctx.store.addExperiment({
      kind: 'probe', modelId: ctx.session.modelId,
      params: {
        hook: input.hook, layers: targets.map((t) => t.layer), position: input.position, task, split: input.split, seed: input.seed,
        l2: input.l2, sdFloor: input.sdFloor, controls: input.controls, classes, examples: input.examples, runIds,
      },
      metric, cleanValue: best.heldOut, corruptedValue: best.shuffled,
      summary: { bestLayer: best.layer, bestHook: best.hook, split: describe, vectors: directions.map((d) => vectorName(d.cls)) },
    }, layerResults.map((r) => ({
      site: r.layer === null ? 'embed' : `L${r.layer}`, hook: r.hook, layer: r.layer, value: r.heldOut,
      effect: r.heldOut - r.shuffled,
      extra: { baseline: r.baseline, shuffled: r.shuffled, train: r.train, metric, selectivity: r.heldOut - r.shuffled },
    })));

    const vectors: ProbeResult['vectors'] = [];
    for (const d of directions) {
      const name = vectorName(d.cls);
      await ctx.store.putVector({
        name, kind: 'probe', modelId: ctx.session.modelId, hook: best.hook, layer: bestTarget.layer, vec: d.vec,
        meta: {
          experimentId, task, class: d.cls, classes, bias: d.bias, position: positionText, metric,
          heldOut: best.heldOut, shuffled: best.shuffled, baseline: best.baseline, l2: input.l2,
          usage: task === 'regression' ? 'prediction = vec . x + bias' : C === 2 ? `vec . x + bias > 0 means "${classes![1]}" over "${classes![0]}"` : 'class score = vec . x + bias (argmax over the class vectors)',
        },
      });
      let nrm = 0;
      for (const v of d.vec) nrm += v * v;
      vectors.push({ name, class: d.cls, bias: d.bias, norm: Math.sqrt(nrm) });
    }

    return {
      experimentId, task, metric, classes, examples: N, samples: samples.length, split: describe,
      layers: layerResults, best, vectors, runIds,
    };
  },
});
