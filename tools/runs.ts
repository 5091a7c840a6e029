// Running prompt sets through the engine and recording them in the store.
import type { RunOptions, RunResult } from '../engine/model.ts';
import type { ToolContext } from './define.ts';
import type { EncodedPrompt } from './session.ts';

/** Runs encoded prompts as one batch and records each prompt as a run; returns the run ids. */
export async function runAndRecord(ctx: ToolContext, prompts: EncodedPrompt[], opts: RunOptions, meta: Record<string, unknown> = {}): Promise<{ result: RunResult; runIds: string[] }> {
  const result = await ctx.session.model.run(prompts.map((p) => p.ids), { signal: ctx.signal, ...opts });
  const runIds: string[] = [];
  for (const p of prompts) {
    runIds.push(await ctx.store.addRun({ modelId: ctx.session.modelId, prompt: p.prompt, tokenIds: p.ids, tokens: p.tokens, meta }));
  }
  return { result, runIds };
}

/** Rows [b] of a batch-first tensor, tiled to `rows` rows by example index (row r takes example r % n). */
export function tileExamples(t: { data: Float32Array; dims: number[] }, rows: number[]): { data: Float32Array; dims: number[] } {
  const per = t.data.length / t.dims[0];
  const out = new Float32Array(rows.length * per);
  rows.forEach((ex, r) => out.set(t.data.subarray(ex * per, (ex + 1) * per), r * per));
  return { data: out, dims: [rows.length, ...t.dims.slice(1)] };
}
