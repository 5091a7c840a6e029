// Pieces shared by the layer graphs: RMSNorm, linear layers on [B, T, in] tensors, and hook points
// (an Identity output when captured, intervention inputs when patched).
import { GraphBuilder, ints, int, float } from '../onnx/graph-builder.ts';

/** Which hooks of one graph are captured and which are intervened on (local names, e.g. `attn.hook_z`). */
export interface HookPlan {
  capture: ReadonlySet<string>;
  intervene: ReadonlySet<string>;
}

export const captureOutput = (local: string): string => `cap__${local}`;
export const interventionInput = (local: string, part: 'mask' | 'value' | 'add'): string => `iv__${local}__${part}`;

/** Inserts a hook point: applies x*(1-mask) + mask*value + add when intervened, then exposes the result when captured. */
export function hookPoint(g: GraphBuilder, plan: HookPlan, local: string, x: string, rank: number): string {
  let out = x;
  if (plan.intervene.has(local)) {
    const dims = (part: string) => Array.from({ length: rank }, (_, i) => `${local}_${part}_${i}`);
    const mask = g.input(interventionInput(local, 'mask'), dims('m'));
    const value = g.input(interventionInput(local, 'value'), dims('v'));
    const add = g.input(interventionInput(local, 'add'), dims('a'));
    const keep = g.op('Sub', [g.constFloat([1], []), mask]);
    out = g.op('Add', [g.op('Add', [g.op('Mul', [out, keep]), g.op('Mul', [mask, value])]), add]);
  }
  if (plan.capture.has(local)) g.output(captureOutput(local), out);
  return out;
}

/** RMSNorm in float32: x * rsqrt(mean(x^2) + eps) * weight (no 1 + weight). */
export function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  const ms = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: ints([-1]), keepdims: int(1) });
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constFloat([eps], [])])])]);
  return g.op('Mul', [g.op('Mul', [x, inv]), weight]);
}

/** y = x W^T + b for x [B, T, in] and W [out, in] as stored (Gemm transB avoids copying W). */
export function linear(g: GraphBuilder, x: string, w: string, b: string, inDim: number, outDim: number): string {
  const flat = g.op('Reshape', [x, g.constInt64([-1, inDim])]);
  const y = g.op('Gemm', [flat, w, b], { transB: int(1) });
  const lead = g.op('Shape', [x], { start: int(0), end: int(-1) });
  return g.op('Reshape', [y, g.op('Concat', [lead, g.constInt64([outDim])], { axis: int(0) })]);
}

/** Half-split rotary embedding over the last axis of x [B, T, n, d] with cos/sin [T, d/2]. */
export function rope(g: GraphBuilder, x: string, cos: string, sin: string, d: number): string {
  const half = d / 2;
  const c = g.op('Unsqueeze', [cos, g.constInt64([0, 2])]); // [1, T, 1, d/2]
  const s = g.op('Unsqueeze', [sin, g.constInt64([0, 2])]);
  const x1 = g.op('Slice', [x, g.constInt64([0]), g.constInt64([half]), g.constInt64([3])]);
  const x2 = g.op('Slice', [x, g.constInt64([half]), g.constInt64([d]), g.constInt64([3])]);
  const o1 = g.op('Sub', [g.op('Mul', [x1, c]), g.op('Mul', [x2, s])]);
  const o2 = g.op('Add', [g.op('Mul', [x2, c]), g.op('Mul', [x1, s])]);
  return g.op('Concat', [o1, o2], { axis: int(3) });
}

export const scalarFloat = (g: GraphBuilder, v: number): string => g.constFloat([v], []);
export { float };
