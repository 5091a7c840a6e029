// Token rows a dictionary is trained or evaluated on: the model's built-in corpus (a gpt-oss-tiny
// model's own task prompts, or the suite's prompt file for real checkpoints), given prompts, or the
// tokens of stored runs. Activations are collected from the real positions only (no padding).
import { HookError, resolveHook } from '../../engine/hooks.ts';
import { ToolError, checkCancelled, type ToolContext } from '../define.ts';
import { loadSuitePrompts } from '../suite/prompts.ts';

export interface TokenRow {
  ids: number[];
  /** Where the row came from: a prompt or a run id, for dashboards. */
  source: string;
  runId?: string;
}

/** Every distinct prompt of the model's prompt sets (tasks only; never the planted roles). */
export function builtInCorpus(modelDir: string): string[] {
  const p = loadSuitePrompts(modelDir);
  const all = [
    ...p.ioi, ...p.induction, ...p.successor, ...p.sentiment,
  ].map((e) => e.prompt);
  all.push(...p.contrast.positive, ...p.contrast.negative, ...Object.values(p.domains).flat());
  return [...new Set(all)];
}

export interface CorpusChoice {
  prompts?: string[];
  runIds?: string[];
}

/** The token rows of a choice (default: the built-in corpus). */
export async function corpusRows(ctx: ToolContext, choice: CorpusChoice): Promise<{ rows: TokenRow[]; source: string }> {
  if (choice.prompts && choice.runIds) throw new ToolError('give prompts or runIds, not both');
  if (choice.runIds) {
    const rows: TokenRow[] = [];
    for (const id of choice.runIds) {
      const r = await ctx.store.getRun(id);
      if (!r) throw new ToolError(`unknown run id "${id}"; list runs with SQL: SELECT run_id, prompt FROM runs ORDER BY created_at DESC`);
      if (r.modelId !== ctx.session.modelId) throw new ToolError(`run "${id}" was made with model ${r.modelId}; the loaded model is ${ctx.session.modelId}`);
      rows.push({ ids: r.tokenIds, source: r.prompt, runId: id });
    }
    return { rows, source: `${rows.length} stored runs` };
  }
  const prompts = choice.prompts ?? builtInCorpus(ctx.session.dir);
  const rows = ctx.session.encodeAll(prompts).map((p) => ({ ids: p.ids, source: p.prompt }));
  return { rows, source: choice.prompts ? `${rows.length} given prompts` : `the built-in corpus (${rows.length} prompts)` };
}

/**
 * The hooks' vectors at every real position of every row: one [tokens, width] matrix per hook, in
 * row order. Batches of `batchSize` rows; progress per batch; refuses beyond `maxBytes`.
 */
export async function collectActivations(
  ctx: ToolContext, rows: TokenRow[], hooks: string[], maxBytes: number, onBatch?: (done: number, total: number) => void, batchSize = 32,
): Promise<{ data: Float32Array[]; widths: number[]; tokens: number }> {
  const model = ctx.session.model;
  const tokens = rows.reduce((n, r) => n + r.ids.length, 0);
  const widths = hooks.map((h) => {
    const dims = model.hookDims(resolveHookSafe(ctx, h), 1, 1, 1);
    if (dims.length !== 3) throw new ToolError(`hook "${h}" has shape [${dims}] per row; dictionaries read one vector per token: use a [B, T, width] hook such as blocks.L.hook_resid_post, blocks.L.hook_mlp_out or blocks.L.ln2.hook_normalized`);
    return dims[2];
  });
  const bytes = tokens * widths.reduce((a, b) => a + b, 0) * 4;
  if (bytes > maxBytes) {
    throw new ToolError(`the activations of ${tokens} tokens at ${hooks.join(', ')} take ${(bytes / 2 ** 20).toFixed(1)} MiB, over the memory budget of ${(maxBytes / 2 ** 20).toFixed(1)} MiB; use fewer prompts or raise memoryBudgetMb`);
  }
  const data = widths.map((w) => new Float32Array(tokens * w));
  let at = 0;
  for (let start = 0; start < rows.length; start += batchSize) {
    checkCancelled(ctx, 'collecting activations');
    const batch = rows.slice(start, start + batchSize);
    const r = await model.run(batch.map((b) => b.ids), { capture: hooks, logits: 'none', signal: ctx.signal });
    hooks.forEach((h, i) => {
      const t = r.cache.get(h)!;
      const T = t.dims[1];
      const w = widths[i];
      let o = at;
      batch.forEach((row, b) => {
        data[i].set(t.data.subarray(b * T * w, (b * T + row.ids.length) * w), o * w);
        o += row.ids.length;
      });
    });
    at += batch.reduce((n, b) => n + b.ids.length, 0);
    onBatch?.(Math.min(start + batchSize, rows.length), rows.length);
  }
  return { data, widths, tokens };
}

function resolveHookSafe(ctx: ToolContext, hook: string) {
  try {
    return resolveHook(hook, ctx.session.config.numLayers);
  } catch (e) {
    if (e instanceof HookError) throw new ToolError(e.message);
    throw e;
  }
}
