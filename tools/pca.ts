// PCA of activations at one hook/layer/position over a prompt set: the principal axes, the share of
// variance each explains, every prompt's coordinates on the first axes and, when prompts carry class
// labels, the class centroids in PC space and how much of each axis the classes account for.
import { z } from 'zod';
import { defineTool, ToolError } from './define.ts';
import { columnStats, dot, mat, principalComponents } from './linalg.ts';
import { ExperimentId, RunIds } from './output.ts';
import { ActivationHook, ActivationPosition, gatherActivations, resolveHookTargets, samplePositions, slug } from './probe.ts';

export const pcaInput = z.strictObject({
  prompts: z.array(z.string().min(1)).min(2).max(5000).describe('the prompts whose activations are analysed'),
  labels: z.array(z.union([z.string().min(1), z.number().finite()])).optional().describe('optional class label per prompt (same length as prompts): centroids and class separation per component'),
  hook: ActivationHook,
  layer: z.number().int().optional().describe('the layer for a short hook name such as "resid_post" (not needed for hook_embed or a full name)'),
  position: ActivationPosition,
  components: z.number().int().min(1).max(20).default(3).describe('how many principal components to compute and store'),
  center: z.boolean().default(true).describe('subtract the mean activation first (standard PCA); false analyses the raw second moment'),
  name: z.string().min(1).max(64).optional().describe('stored as pca_<name>_c0, pca_<name>_c1, ... (default <hook>_L<layer>); reusing a name replaces them'),
  maxProjections: z.number().int().min(0).max(5000).default(200).describe('how many samples\' coordinates to return (all are stored)'),
  batch: z.number().int().min(1).max(256).default(32).describe('prompts per forward pass'),
});

export const pcaOutput = z.object({
  experimentId: ExperimentId,
  hook: z.string(),
  layer: z.number().int().nullable(),
  samples: z.number().int(),
  totalVariance: z.number(),
  components: z.array(z.object({
    index: z.number().int(), name: z.string().describe('the stored vector'), explainedVarianceRatio: z.number(), cumulative: z.number(),
    variance: z.number(), classEta2: z.number().nullable().describe('share of this component\'s variance the class labels explain'),
  })),
  projections: z.array(z.object({
    prompt: z.number().int(), position: z.union([z.number().int(), z.literal('mean')]), label: z.string().nullable(),
    pcs: z.array(z.number()).describe('coordinates on the first (up to 3) components'),
  })).describe('the first maxProjections samples (every sample is a results row)'),
  centroids: z.array(z.object({ label: z.string(), count: z.number().int(), pcs: z.array(z.number()) })).nullable(),
  runIds: RunIds,
});

export const pcaTool = defineTool({
  name: 'pca',
  description: 'Principal component analysis of activations at a hook/layer/position over prompts (optionally class-labelled): the components (stored as vectors pca_<name>_c0.. of kind "pca"), explained-variance ratios, every prompt\'s coordinates on the first PCs, per-class centroids in PC space and the share of each PC\'s variance the classes explain (eta²). Stores an experiment with a row per component and per sample.',
  readsText: true,
  limits: { prompts: ['prompts'] },
  input: pcaInput,
  output: pcaOutput,
  async run(input, ctx) {
    if (input.labels && input.labels.length !== input.prompts.length) {
      throw new ToolError(`labels has ${input.labels.length} entries for ${input.prompts.length} prompts; give one label per prompt`);
    }
    const isShort = !/^blocks\./.test(input.hook.trim()) && !['hook_embed', 'embed'].includes(input.hook.trim());
    if (isShort && input.layer === undefined) throw new ToolError(`give "layer" for hook "${input.hook}" (valid: 0..${ctx.session.config.numLayers - 1}), or a full hook name such as blocks.0.hook_resid_post`);
    const [target] = resolveHookTargets(input.hook, input.layer === undefined ? undefined : [input.layer], ctx);
    const prompts = ctx.session.encodeAll(input.prompts);
    const samples = samplePositions(ctx, prompts, input.position);
    if (samples.length < 2) throw new ToolError('PCA needs at least two samples');
    const { features, runIds } = await gatherActivations(ctx, prompts, [target], samples, 'pca', input.batch);
    const X = features.get(target.name)!;
    const N = X.rows, H = X.cols;

    const mean = input.center ? columnStats(X).mean : new Float64Array(H);
    const Xc = mat(N, H);
    for (let i = 0; i < N; i++) for (let j = 0; j < H; j++) Xc.data[i * H + j] = X.data[i * H + j] - mean[j];
    const { components, variances, total } = principalComponents(Xc, input.components);
    if (components.length === 0) throw new ToolError('the activations do not vary across these samples (all identical); nothing to analyse');
    const K = components.length;
    const ratios = variances.map((v) => (total > 0 ? v / total : 0));
    const proj = Array.from({ length: N }, (_, i) => components.map((c) => dot(c, Xc.data.subarray(i * H, (i + 1) * H))));

    // Class centroids in PC space and eta² (between-class share of each PC's variance).
    const label = (i: number) => (input.labels ? String(input.labels[samples[i].example]) : null);
    let centroids: { label: string; count: number; pcs: number[] }[] | null = null;
    let eta2: number[] | null = null;
    if (input.labels) {
      const classes = [...new Set(samples.map((_, i) => label(i)!))];
      centroids = classes.map((c) => {
        const idx = samples.flatMap((_, i) => (label(i) === c ? [i] : []));
        return { label: c, count: idx.length, pcs: components.map((_, k) => (idx.reduce((s, i) => s + proj[i][k], 0) / idx.length)) };
      });
      eta2 = components.map((_, k) => {
        const m = proj.reduce((s, p) => s + p[k], 0) / N;
        const totalSS = proj.reduce((s, p) => s + (p[k] - m) ** 2, 0);
        let between = 0;
        for (const c of classes) {
          const idx = samples.flatMap((_, i) => (label(i) === c ? [i] : []));
          const cm = idx.reduce((s, i) => s + proj[i][k], 0) / idx.length;
          between += idx.length * (cm - m) ** 2;
        }
        return totalSS > 0 ? (between / totalSS) : 0;
      });
    }

    const base = slug(input.name ?? `${target.short}${target.layer === null ? '' : `_L${target.layer}`}`);
    const names = components.map((_, k) => `pca_${base}_c${k}`);
    let cumulative = 0;
    const compRows = components.map((_, k) => {
      cumulative += ratios[k];
      return { index: k, name: names[k], explainedVarianceRatio: ratios[k], cumulative, variance: variances[k], classEta2: eta2?.[k] ?? null };
    });
    const positionText = typeof input.position === 'object' ? `token:${input.position.token}` : String(input.position);
    const experimentId = await ctx.store.addExperiment({
      kind: 'pca', modelId: ctx.session.modelId,
      params: { hook: target.name, layer: target.layer, position: input.position, components: input.components, center: input.center, prompts: input.prompts, labels: input.labels ?? null, runIds },
      metric: 'explained_variance_ratio', cleanValue: cumulative, corruptedValue: null,
      summary: { totalVariance: total, samples: N, vectors: names, centroids },
    }, [
      ...compRows.map((c) => ({
        site: `PC${c.index}`, hook: target.name, layer: target.layer, component: c.index, value: c.explainedVarianceRatio, effect: null,
        extra: { variance: c.variance, cumulative: c.cumulative, classEta2: c.classEta2, vector: c.name },
      })),
      ...samples.map((s, i) => ({
        site: `sample_${i}`, hook: target.name, layer: target.layer, position: s.position < 0 ? null : s.position, value: proj[i][0], effect: null,
        extra: { prompt: s.example, label: label(i), pcs: [...proj[i]], runId: runIds[s.example] },
      })),
    ]);
    for (const [k, c] of components.entries()) {
      await ctx.store.putVector({
        name: names[k], kind: 'pca', modelId: ctx.session.modelId, hook: target.name, layer: target.layer, vec: Float32Array.from(c),
        meta: { experimentId, component: k, explainedVarianceRatio: ratios[k], variance: variances[k], position: positionText, centered: input.center, mean: input.center ? Array.from(mean) : null },
      });
    }
    const shown = Math.min(3, K);
    return {
      experimentId, hook: target.name, layer: target.layer, samples: N, totalVariance: total,
      components: compRows,
      projections: samples.slice(0, input.maxProjections).map((s, i) => ({ prompt: s.example, position: s.position < 0 ? ('mean' as const) : s.position, label: label(i), pcs: proj[i].slice(0, shown) })),
      centroids,
      runIds,
    };
  },
});
