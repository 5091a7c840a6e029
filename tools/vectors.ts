// Directions as tools take them: a stored vector by name (probe, PCA, steering) or raw values a
// client computed, which are then stored under a name so the experiment can be repeated.
import { z } from 'zod';
import { ToolError, type ToolContext } from './define.ts';

export const StoredVector = z.strictObject({ name: z.string().min(1) }).describe('a stored vector (steering, probe or PCA direction)');
export const RawVector = z.strictObject({ values: z.array(z.number()).min(1).max(1_000_000) })
  .describe('a raw direction, one value per residual dimension (e.g. one a client computed); stored under a generated name');

/** A stored or raw direction. */
export const VectorRef = z.union([StoredVector, RawVector]);
export type VectorRef = z.infer<typeof VectorRef>;

export interface Direction {
  vec: Float32Array;
  name: string;
  /** Where the vector was taken (stored vectors), else null. */
  hook: string | null;
}

/**
 * The direction `ref` names, checked to be a nonzero residual-width vector. Raw values are stored
 * as a vector of `kind` under `saveAs` (or a generated name), at `hook`.
 */
export async function loadDirection(ctx: ToolContext, ref: VectorRef, opts: { kind: string; hook: string | null; layer: number | null; saveAs?: string; source: string }): Promise<Direction> {
  const H = ctx.session.config.hiddenSize;
  if ('name' in ref) {
    const v = await ctx.store.getVector(ref.name);
    if (!v) throw new ToolError(`no stored vector "${ref.name}"; list vectors with SQL: SELECT name, kind, hook FROM vectors`);
    if (v.vec.length !== H) throw new ToolError(`vector "${ref.name}" has ${v.vec.length} values; the residual stream has ${H}`);
    return { vec: Float32Array.from(v.vec), name: ref.name, hook: v.hook };
  }
  if (ref.values.length !== H) throw new ToolError(`vector.values has ${ref.values.length} values; the residual stream has ${H} (hiddenSize in model_info)`);
  if (ref.values.every((x) => x === 0)) throw new ToolError('vector.values is all zeros: it has no direction');
  const vec = Float32Array.from(ref.values);
  const name = opts.saveAs ?? `${opts.kind}_raw_${Date.now().toString(36)}`;
  await ctx.store.putVector({ name, kind: opts.kind, modelId: ctx.session.modelId, hook: opts.hook, layer: opts.layer, vec, meta: { source: opts.source } });
  return { vec, name, hook: null };
}
