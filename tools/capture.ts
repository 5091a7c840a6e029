// Capture: run prompts, copy out the asked-for hooks at the asked-for positions, store them as
// activation rows (one vector per run x hook x position x head/expert) and summarise.
import { z } from 'zod';
import type { GptOssConfig } from '../engine/config.ts';
import { blockHook } from '../engine/hook-address.ts';
import { axisSize, componentAxis, type ResolvedHook } from '../engine/hooks.ts';
import type { Tensor } from '../engine/tensor.ts';
import { checkCancelled, defineTool, ToolError } from './define.ts';
import { runAndRecord } from './runs.ts';
import { resolveHooks, resolvePositions, siteList } from './sites.ts';
import { RunIds } from './output.ts';
import { attachedAt } from './sae/registry.ts';
import type { ActivationInput, SaeLatentInput } from './store/index.ts';

export const captureInput = z.strictObject({
  prompts: z.array(z.string().min(1)).min(1).max(256).describe('one or more prompts'),
  hooks: siteList(z.string().min(1), 'hook').describe('hook names or patterns, e.g. ["blocks.*.hook_resid_post", "blocks.2.attn.hook_pattern"]'),
  positions: z.union([z.literal('all'), siteList(z.number().int(), 'position')]).default('all').describe('token positions to keep (negative counts from the end)'),
  components: siteList(z.number().int(), 'component').optional().describe('for per-head / per-expert hooks: which heads or experts to keep (default all)'),
  store: z.boolean().default(true).describe('write the vectors to the activations table'),
  maxRows: z.number().int().min(1).max(2_000_000).default(200_000).describe('refuse captures that would write more rows than this'),
});

export const captureOutput = z.object({
  runIds: RunIds,
  tokens: z.array(z.array(z.string())).describe('the tokens of each prompt'),
  hooks: z.array(z.object({
    hook: z.string(),
    shape: z.array(z.number().int()).describe('the captured tensor\'s dims'),
    vectors: z.number().int().describe('vectors kept (stored when store is true)'),
    meanNorm: z.number(),
  })),
  rowsStored: z.number().int(),
  latentRowsStored: z.number().int().describe('rows written to sae_latents (one per active dictionary latent)'),
  topTokens: z.array(z.object({
    prompt: z.string(),
    next: z.array(z.object({ token: z.string(), logit: z.number() })).describe('the five likeliest next tokens'),
  })),
});

/**
 * How a hook's tensor splits into stored vectors, read from its axes: the (first) position axis,
 * the component axis (heads, KV heads or experts, when it is not the vector axis), and whether
 * all-zero vectors are skipped (experts not chosen for a token hold zeros).
 */
interface Layout { posAxis: number; compAxis: number | null; skipZero: boolean }
function layoutOf(h: ResolvedHook): Layout {
  const axes = h.spec.axes;
  const compAxis = componentAxis(axes);
  return { posAxis: axes.findIndex((a) => a === 'pos' || a === 'out_pos'), compAxis, skipZero: compAxis !== null && axes[compAxis] === 'expert' };
}

/** The vectors of row b of a captured hook, keyed by (position, component). */
export function* hookVectors(h: ResolvedHook, t: Tensor, b: number, positions: number[], components?: number[]):
  Generator<{ position: number; component: number | null; vec: Float32Array }> {
  const layout = layoutOf(h);
  const dims = t.dims;
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((a, c) => a * c, 1));
  const comps = layout.compAxis === null ? [null] : (components ?? [...Array(dims[layout.compAxis]).keys()]);
  const vecAxis = dims.length - 1;
  for (const p of positions) {
    if (p >= dims[layout.posAxis]) continue;
    for (const c of comps) {
      let o = b * strides[0] + p * strides[layout.posAxis];
      if (c !== null) o += c * strides[layout.compAxis!];
      // [B, nH, T] has no vector axis left: each value is a 1-vector.
      const len = vecAxis === layout.posAxis ? 1 : dims[vecAxis];
      const vec = t.data.slice(o, o + len);
      if (layout.skipZero && vec.every((x) => x === 0)) continue;
      yield { position: p, component: c, vec };
    }
  }
}

/** How many heads or experts a hook's component axis has (null: the hook has no component axis). */
function componentCount(h: ResolvedHook, cfg: GptOssConfig): number | null {
  const axis = layoutOf(h).compAxis;
  return axis === null ? null : axisSize(h.spec.axes[axis], cfg, { B: 0, T: 0, P: 0, past: 0 });
}

/** Every component index must exist on every hook it is read from (an index past the axis would read another position's data). */
function checkComponents(hooks: ResolvedHook[], components: number[], cfg: GptOssConfig): void {
  for (const h of hooks) {
    const n = componentCount(h, cfg);
    if (n === null) throw new ToolError(`components were given, but ${h.name} (${h.spec.shape}) has no head or expert axis; leave components out, or capture per-head / per-expert hooks only`);
    const bad = components.filter((c) => c < 0 || c >= n);
    if (bad.length) throw new ToolError(`components ${bad.join(', ')} do not exist on ${h.name} (${h.spec.shape}): valid 0..${n - 1}`);
  }
}

/** One row per active latent of a captured [B, T, S] latent hook, at the kept positions. */
function latentRows(t: Tensor, runIds: string[], positions: number[][], saeId: string): SaeLatentInput[] {
  const [, T, S] = t.dims;
  const out: SaeLatentInput[] = [];
  runIds.forEach((runId, b) => {
    for (const p of positions[b]) {
      const o = (b * T + p) * S;
      for (let j = 0; j < S; j++) if (t.data[o + j] !== 0) out.push({ runId, saeId, position: p, latent: j, value: t.data[o + j] });
    }
  });
  return out;
}

export const captureTool = defineTool({
  name: 'capture_activations',
  description: 'Run prompts and capture activations at hooks (names or patterns) and positions; stores one row per run x hook x position x head/expert in the activations table (per-expert hooks such as mlp.hook_post: only the tokens routed to that expert; in SQL, dimension d of vec is vec[d + 1]) (dictionary latents, blocks.L.<hook>.sae.hook_sae_acts: one row per active latent in sae_latents) and returns run ids, shapes, mean norms and the top next tokens.',
  readsText: true,
  limits: { prompts: ['prompts'], sweep: { batch: ['prompts'], hooks: 'hooks', positions: 'positions' } },
  input: captureInput,
  output: captureOutput,
  async run(input, ctx) {
    const cfg = ctx.session.config;
    const prompts = ctx.session.encodeAll(input.prompts);
    const hooks = resolveHooks(input.hooks, cfg.numLayers);
    if (input.components) checkComponents(hooks, input.components, cfg);
    const perPrompt = prompts.map((p) => resolvePositions(input.positions, p.ids.length));
    const needsAll = hooks.some((h) => h.spec.axes.includes('out_pos'));
    const estimate = hooks.reduce((n, h) => {
      const comps = input.components?.length ?? componentCount(h, cfg) ?? 1;
      return n + comps * perPrompt.reduce((a, ps) => a + ps.length, 0);
    }, 0);
    if (input.store && estimate > input.maxRows) {
      throw new ToolError(`this capture would store about ${estimate} rows, over the limit of ${input.maxRows}; narrow hooks, positions or components, or raise maxRows`);
    }
    checkCancelled(ctx, 'capture_activations');
    const { result, runIds } = await runAndRecord(ctx, prompts, {
      capture: hooks.map((h) => h.name),
      logits: needsAll ? 'all' : 'last',
      onProgress: (p) => ctx.onProgress?.({ done: p.done, total: p.total, message: `${p.stage} ${p.done}/${p.total}` }),
    }, { role: 'capture' });
    const rows: ActivationInput[] = [];
    const latents: SaeLatentInput[] = [];
    const summary = hooks.map((h) => {
      const t = result.cache.get(h.name)!;
      if (h.address.kind === 'sae' && h.address.part === 'hook_sae_acts') {
        const { saeId } = attachedAt(ctx, blockHook(h.address.layer, h.address.site));
        const found = latentRows(t, runIds, perPrompt, saeId);
        if (input.store) latents.push(...found);
        return { hook: h.name, shape: t.dims, vectors: found.length, meanNorm: found.reduce((a, r) => a + r.value, 0) / Math.max(1, found.length) };
      }
      let count = 0;
      let normSum = 0;
      prompts.forEach((_, b) => {
        // Unembedded hooks are indexed by position directly when all positions were unembedded.
        for (const v of hookVectors(h, t, b, perPrompt[b], input.components)) {
          let s = 0;
          for (const x of v.vec) s += x * x;
          normSum += Math.sqrt(s);
          count++;
          if (input.store) rows.push({ runId: runIds[b], hook: h.name, layer: h.layer, position: v.position, component: v.component, vec: v.vec });
        }
      });
      return { hook: h.name, shape: t.dims, vectors: count, meanNorm: count ? normSum / count : 0 };
    });
    if (input.store && rows.length) await ctx.store.addActivations(rows);
    if (latents.length) await ctx.store.addSaeLatents(latents);
    const V = cfg.vocabSize;
    const P = result.logits!.dims[1];
    const topTokens = prompts.map((p, b) => {
      const at = P === 1 ? 0 : p.ids.length - 1;
      const row = result.logits!.data.subarray((b * P + at) * V, (b * P + at + 1) * V);
      const idx = [...row.keys()].sort((x, y) => row[y] - row[x]).slice(0, 5);
      return { prompt: p.prompt, next: idx.map((i) => ({ token: ctx.session.tokenizer.tokenString(i), logit: row[i] })) };
    });
    return { runIds, tokens: prompts.map((p) => p.tokens), hooks: summary, rowsStored: input.store ? rows.length : 0, latentRowsStored: latents.length, topTokens };
  },
});
