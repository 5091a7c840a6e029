// The single intervention form used for patching, ablation and steering at any hook point:
//   x' = x * (1 - mask) + mask * value + add
// which is x + mask * (value - x) + add, written so that mask = 1 yields `value` bit for bit.
// mask, value and add broadcast (numpy rules) against the hook's shape, batch first, so one
// batch can carry many variants, one per row.
import { HookError, resolveHook, type ResolvedHook } from './hooks.ts';
import { broadcastStrides, broadcastsTo, numel, type Tensor } from './tensor.ts';

export interface Intervention {
  hook: string;
  mask?: Tensor;
  value?: Tensor;
  add?: Tensor;
}

/** Force or forbid experts before top-k at one layer (all rows/positions unless narrowed). */
export interface RoutingIntervention {
  layer: number;
  force?: number[];
  forbid?: number[];
  rows?: number[];
  /** Absolute positions; with a KV cache of C positions, those below C are cached and not recomputed. */
  positions?: number[];
}

export interface ResolvedIntervention {
  hook: ResolvedHook;
  mask: Tensor;
  value: Tensor;
  add: Tensor;
}

const scalar = (v: number, rank: number): Tensor => ({ data: new Float32Array([v]), dims: new Array(rank).fill(1) });

/** Validates names, writability and broadcast shapes; fills absent parts with neutral scalars. */
export function resolveInterventions(
  ivs: readonly Intervention[],
  numLayers: number,
  hookDims: (h: ResolvedHook) => number[],
): Map<string, ResolvedIntervention> {
  const out = new Map<string, ResolvedIntervention>();
  for (const iv of ivs) {
    const hook = resolveHook(iv.hook, numLayers);
    if (!hook.spec.writable) throw new HookError(`hook "${iv.hook}" cannot be intervened on: ${hook.spec.readOnlyReason}`);
    if (out.has(hook.name)) {
      throw new HookError(`two interventions on "${hook.name}": combine them into one (mask/value/add carry a batch dim for per-row variants)`);
    }
    if (!iv.mask && !iv.value && !iv.add) throw new HookError(`intervention on "${hook.name}" has none of mask, value, add`);
    if (iv.value && !iv.mask) throw new HookError(`intervention on "${hook.name}" gives a value but no mask: say where the value applies (mask 1 = replace)`);
    const target = hookDims(hook);
    const rank = target.length;
    const check = (part: 'mask' | 'value' | 'add', t: Tensor | undefined, neutral: number): Tensor => {
      if (!t) return scalar(neutral, rank);
      if (t.data.length !== numel(t.dims)) throw new HookError(`intervention ${part} on "${hook.name}": data length ${t.data.length} does not match dims [${t.dims}]`);
      if (!broadcastsTo(t.dims, target)) {
        throw new HookError(`intervention ${part} on "${hook.name}" has dims [${t.dims}] that do not broadcast to the hook's shape [${target}] (${hook.spec.shape}); each dim must be 1 or equal, right-aligned`);
      }
      return t.dims.length === rank ? t : { data: t.data, dims: [...new Array(rank - t.dims.length).fill(1), ...t.dims] };
    };
    out.set(hook.name, { hook, mask: check('mask', iv.mask, 0), value: check('value', iv.value, 0), add: check('add', iv.add, 0) });
  }
  return out;
}

/** Applies an intervention in place to a tensor computed in JS (the graph-side twin is in graphs/common.ts). */
export function applyIntervention(x: Tensor, iv: ResolvedIntervention): void {
  const dims = x.dims;
  const R = dims.length;
  const sm = broadcastStrides(iv.mask.dims, dims);
  const sv = broadcastStrides(iv.value.dims, dims);
  const sa = broadcastStrides(iv.add.dims, dims);
  const m = iv.mask.data;
  const v = iv.value.data;
  const a = iv.add.data;
  const d = x.data;
  if (d.length === 0) return;
  // Walk the last axis as a strided run and carry the outer index once per run: the same
  // arithmetic per element, without an index carry per element ([B, T, E, H] expert outputs are big).
  const inner = R ? dims[R - 1] : 1;
  const [mi, vi, ai] = R ? [sm[R - 1], sv[R - 1], sa[R - 1]] : [0, 0, 0];
  const idx = new Array<number>(R).fill(0);
  let im = 0;
  let ivv = 0;
  let ia = 0;
  for (let base = 0; base < d.length; base += inner) {
    for (let j = 0, pm = im, pv = ivv, pa = ia; j < inner; j++, pm += mi, pv += vi, pa += ai) {
      const mk = m[pm];
      d[base + j] = d[base + j] * (1 - mk) + mk * v[pv] + a[pa];
    }
    for (let ax = R - 2; ax >= 0; ax--) {
      idx[ax]++;
      im += sm[ax];
      ivv += sv[ax];
      ia += sa[ax];
      if (idx[ax] < dims[ax]) break;
      im -= sm[ax] * dims[ax];
      ivv -= sv[ax] * dims[ax];
      ia -= sa[ax] * dims[ax];
      idx[ax] = 0;
    }
  }
}
