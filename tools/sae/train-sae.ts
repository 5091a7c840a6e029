// train_sae: collect a hook's activations over a corpus, train a TopK SAE (or transcoder) on them in
// onnxruntime, measure it on held-out prompts (reconstruction, L0, dead latents, and the
// next-token loss with the reconstruction spliced into the forward), and save it as a SAELens
// folder recorded in the store.
import { blockHook, parseHookName } from '../../engine/hook-address.ts';
import { z } from 'zod';
import { resolveHook } from '../../engine/hooks.ts';
import type { SparseDictionary } from '../../engine/sae/dictionary.ts';
import { DictionaryRunner } from '../../engine/sae/dictionary.ts';
import { measureReconstruction, trainTopK, TrainError } from '../../engine/sae/trainer.ts';
import { checkCancelled, defineTool, ToolError, type ToolContext } from '../define.ts';
import { collectActivations, corpusRows, type TokenRow } from './corpus.ts';
import { attachDictionary, saveDictionary } from './registry.ts';

export const trainSaeInput = z.strictObject({
  hook: z.string().min(1).describe('hook the dictionary reads, one vector per token, e.g. "blocks.2.hook_resid_post"'),
  kind: z.enum(['sae', 'transcoder']).default('sae').describe('sae: reconstruct the hook; transcoder: predict hookOut from hook'),
  hookOut: z.string().min(1).optional().describe('transcoder target (default: hook_mlp_out of the same layer, e.g. from blocks.L.ln2.hook_normalized)'),
  prompts: z.array(z.string().min(1)).min(1).max(4096).optional().describe('train on these prompts instead of the built-in corpus'),
  runIds: z.array(z.string().min(1)).min(1).max(4096).optional().describe('train on the tokens of these stored runs instead'),
  dSae: z.number().int().min(2).max(262_144).optional().describe('number of latents (default 4 x the hook width)'),
  k: z.number().int().min(1).optional().describe('latents active per token (default: width / 16, between 4 and 64)'),
  steps: z.number().int().min(1).max(1_000_000).optional().describe('optimiser steps (default: 40 passes over the tokens, at least 1000)'),
  batchSize: z.number().int().min(1).max(65_536).default(256),
  lr: z.number().positive().max(1).default(1e-3).describe('Adam learning rate'),
  seed: z.number().int().default(0),
  memoryBudgetMb: z.number().positive().max(1_048_576).default(2048).describe('refuse runs whose activations and optimiser state exceed this'),
  attach: z.boolean().default(true).describe('splice the trained SAE into the loaded model so its latents are hooks (SAEs only)'),
  saeId: z.string().min(1).max(64).optional().describe('id (and folder name under <data>/saes/) for the result; default a fresh "sae_..." id'),
});

export const reconstructionOutput = z.object({
  explainedVariance: z.number(),
  mse: z.number(),
  l0: z.number(),
  deadLatents: z.number().int(),
  rows: z.number().int(),
});

export const trainSaeOutput = z.object({
  saeId: z.string(),
  path: z.string().describe('folder with cfg.json and sae_weights.safetensors (SAELens layout)'),
  kind: z.enum(['sae', 'transcoder']),
  hook: z.string(),
  hookOut: z.string().nullable(),
  architecture: z.literal('topk'),
  dIn: z.number().int(),
  dOut: z.number().int(),
  dSae: z.number().int(),
  k: z.number().int(),
  corpus: z.string(),
  tokens: z.object({ train: z.number().int(), eval: z.number().int() }),
  evalOn: z.enum(['held-out prompts', 'training prompts']),
  steps: z.number().int(),
  finalTrainMse: z.number(),
  eval: reconstructionOutput.describe('on the eval tokens'),
  train: reconstructionOutput.describe('on the training tokens (dead latents: active on none of them)'),
  loss: z.object({
    clean: z.number().describe('mean next-token cross-entropy (nats) on the eval prompts'),
    spliced: z.number().describe('the same with the reconstruction in place of the hook'),
    delta: z.number().describe('spliced - clean'),
  }),
  latentHooks: z.array(z.string()).describe('the hooks of its latents and error when attached (empty otherwise)'),
  seconds: z.number(),
});
export type TrainSaeResult = z.infer<typeof trainSaeOutput>;

/** Mean next-token cross-entropy over the real positions 0..len-2 of each row, from all-position logits. */
export function nextTokenLoss(logits: Float32Array, V: number, T: number, rows: TokenRow[]): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  rows.forEach((row, b) => {
    for (let t = 0; t + 1 < row.ids.length; t++) {
      const o = (b * T + t) * V;
      let max = -Infinity;
      for (let v = 0; v < V; v++) max = Math.max(max, logits[o + v]);
      let z = 0;
      for (let v = 0; v < V; v++) z += Math.exp(logits[o + v] - max);
      sum += Math.log(z) + max - logits[o + row.ids[t + 1]];
      count++;
    }
  });
  return { sum, count };
}

/** Next-token loss of the eval rows, clean and with `dict`'s output written over its output hook. */
export async function splicedLoss(ctx: ToolContext, dict: SparseDictionary, rows: TokenRow[], batchSize = 16): Promise<{ clean: number; spliced: number }> {
  const runner = new DictionaryRunner(dict);
  const outHook = dict.hookOut ?? dict.hook;
  const V = ctx.session.config.vocabSize;
  let clean = { sum: 0, count: 0 };
  let spliced = { sum: 0, count: 0 };
  try {
    for (let start = 0; start < rows.length; start += batchSize) {
      checkCancelled(ctx, 'measuring the spliced loss');
      const batch = rows.slice(start, start + batchSize);
      const ids = batch.map((r) => r.ids);
      const base = await ctx.session.model.run(ids, { capture: [dict.hook], logits: 'all', signal: ctx.signal });
      const x = base.cache.get(dict.hook)!;
      const T = x.dims[1];
      const out = await runner.decode(await runner.encode(x.data));
      const value = { data: out, dims: [batch.length, T, dict.dOut] };
      const patched = await ctx.session.model.run(ids, { logits: 'all', signal: ctx.signal, interventions: [{ hook: outHook, mask: { data: Float32Array.of(1), dims: [1] }, value }] });
      const add = (acc: { sum: number; count: number }, l: { sum: number; count: number }) => ({ sum: acc.sum + l.sum, count: acc.count + l.count });
      clean = add(clean, nextTokenLoss(base.logits!.data, V, T, batch));
      spliced = add(spliced, nextTokenLoss(patched.logits!.data, V, T, batch));
    }
  } finally {
    await runner.release();
  }
  return { clean: clean.sum / Math.max(1, clean.count), spliced: spliced.sum / Math.max(1, spliced.count) };
}

function transcoderTarget(hook: string, given: string | undefined): string {
  if (given) return given;
  const a = parseHookName(hook);
  if (a.kind !== 'block' || a.local !== 'ln2.hook_normalized') throw new ToolError(`a transcoder needs hookOut (the hook it predicts); it defaults only for blocks.L.ln2.hook_normalized (to blocks.L.hook_mlp_out), and "${hook}" is not one`);
  return blockHook(a.layer, 'hook_mlp_out');
}

export const trainSaeTool = defineTool({
  name: 'train_sae',
  description:
    'Train a TopK sparse autoencoder (or a transcoder, MLP-in to MLP-out) on one hook\'s activations over the model\'s built-in corpus (or given prompts / stored runs). `{hook}` alone works. Reports explained variance, MSE, L0, dead latents and the next-token loss with the reconstruction spliced in (delta CE) on held-out prompts; saves a SAELens folder (cfg.json + sae_weights.safetensors) under <data>/saes/<saeId>/ and returns saeId and path. Its latents then are the hook <hook>.sae.hook_sae_acts.',
  limits: { prompts: ['prompts'] },
  input: trainSaeInput,
  output: trainSaeOutput,
  async run(input, ctx): Promise<TrainSaeResult> {
    const t0 = Date.now();
    const cfg = ctx.session.config;
    const hook = resolveHook(input.hook, cfg.numLayers).name;
    const hookOut = input.kind === 'transcoder' ? resolveHook(transcoderTarget(hook, input.hookOut), cfg.numLayers).name : null;
    if (input.kind === 'sae' && input.hookOut) throw new ToolError('hookOut is for transcoders; give kind: "transcoder" or drop hookOut');
    const { rows, source } = await corpusRows(ctx, { prompts: input.prompts, runIds: input.runIds });
    // Every 10th prompt is held out for evaluation when there are enough of them.
    const heldOut = rows.length >= 10;
    const evalRows = heldOut ? rows.filter((_, i) => i % 10 === 9) : rows;
    const trainRows = heldOut ? rows.filter((_, i) => i % 10 !== 9) : rows;
    const hooks = hookOut ? [hook, hookOut] : [hook];
    const budget = input.memoryBudgetMb * 2 ** 20;
    const progress = (message: string, done: number, total: number) => ctx.onProgress?.({ done, total, message });
    const train = await collectActivations(ctx, trainRows, hooks, budget, (d, n) => progress(`collecting activations ${d}/${n} prompts`, d, n));
    const [dIn, dOut] = hookOut ? train.widths : [train.widths[0], train.widths[0]];
    const dSae = input.dSae ?? 4 * dIn;
    const k = input.k ?? Math.min(64, Math.max(4, Math.round(dIn / 16)));
    if (k > dSae) throw new ToolError(`k = ${k} is more than dSae = ${dSae}; valid k: 1..${dSae}`);
    const batch = Math.min(input.batchSize, train.tokens);
    // Parameters with their two Adam moments and the graph's outputs (x4), plus a step's activations.
    const stateBytes = 4 * 4 * (dIn * dSae + dSae * dOut + dSae + dOut) + 4 * batch * (6 * dSae + 4 * (dIn + dOut));
    const dataBytes = 4 * train.tokens * (dIn + (hookOut ? dOut : 0));
    if (stateBytes + dataBytes > budget) {
      throw new ToolError(`training needs about ${((stateBytes + dataBytes) / 2 ** 20).toFixed(1)} MiB (activations ${(dataBytes / 2 ** 20).toFixed(1)} MiB, parameters, Adam state and a batch ${(stateBytes / 2 ** 20).toFixed(1)} MiB), over memoryBudgetMb = ${input.memoryBudgetMb}; lower dSae, batchSize or the number of prompts, or raise memoryBudgetMb`);
    }
    let trained;
    try {
      trained = await trainTopK(train.data[0], dIn, hookOut ? train.data[1] : null, dOut, {
        dSae, k, steps: input.steps, batchSize: batch, lr: input.lr, seed: input.seed, signal: ctx.signal,
        onProgress: (p) => progress(`training step ${p.step}/${p.steps}, batch MSE ${p.mse.toPrecision(3)}`, p.step, p.steps),
      });
    } catch (e) {
      if (e instanceof TrainError) throw new ToolError(e.message);
      throw e;
    }
    const dict: SparseDictionary = {
      architecture: 'topk', dIn, dSae, dOut, k, hook, hookOut: hookOut ?? undefined, modelName: ctx.session.modelId,
      applyBDecToInput: !hookOut, wEnc: trained.wEnc, bEnc: trained.bEnc, wDec: trained.wDec, bDec: trained.bDec,
    };
    checkCancelled(ctx, 'train_sae');
    progress('evaluating on held-out prompts', 0, 1);
    const ev = heldOut ? await collectActivations(ctx, evalRows, hooks, budget) : train;
    const evalMetrics = await measureReconstruction(dict, ev.data[0], hookOut ? ev.data[1] : null);
    const trainMetrics = heldOut ? await measureReconstruction(dict, train.data[0], hookOut ? train.data[1] : null) : evalMetrics;
    const ce = await splicedLoss(ctx, dict, evalRows);
    const loss = { clean: ce.clean, spliced: ce.spliced, delta: ce.spliced - ce.clean };
    const settings = { kind: input.kind, k, dSae, steps: trained.steps, batchSize: batch, lr: input.lr, seed: input.seed, corpus: source, trainTokens: train.tokens };
    const { saeId, path } = await saveDictionary(ctx, dict, {
      saeId: input.saeId,
      metrics: { settings, eval: evalMetrics, train: trainMetrics, loss, finalTrainMse: trained.finalTrainMse },
      cfgExtra: { context_size: Math.max(...rows.map((r) => r.ids.length)), dataset_path: source },
    });
    const latentHooks = input.attach && !hookOut ? (await attachDictionary(ctx, saeId, dict)).hooks : [];
    progress('done', 1, 1);
    return {
      saeId, path, kind: input.kind, hook, hookOut, architecture: 'topk', dIn, dOut, dSae, k, corpus: source,
      tokens: { train: train.tokens, eval: ev.tokens }, evalOn: heldOut ? 'held-out prompts' : 'training prompts',
      steps: trained.steps, finalTrainMse: trained.finalTrainMse, eval: evalMetrics, train: trainMetrics, loss, latentHooks, seconds: (Date.now() - t0) / 1000,
    };
  },
});
