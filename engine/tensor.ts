// The engine's one tensor form: float32 data in row-major order with its dims.
import { numel } from './safetensors.ts';

export { numel };

export interface Tensor {
  data: Float32Array;
  dims: number[];
}

/** Row-major strides, with 0 where a dim is broadcast (size 1 against a larger target). */
export function broadcastStrides(dims: readonly number[], target: readonly number[]): number[] {
  const strides = new Array<number>(target.length).fill(0);
  let s = 1;
  for (let i = target.length - 1, j = dims.length - 1; i >= 0; i--, j--) {
    const d = j >= 0 ? dims[j] : 1;
    strides[i] = d === 1 ? 0 : s;
    s *= d;
  }
  return strides;
}

/** True when `dims` broadcasts to `target` under numpy rules (right-aligned, each 1 or equal). */
export function broadcastsTo(dims: readonly number[], target: readonly number[]): boolean {
  if (dims.length > target.length) return false;
  for (let i = 1; i <= dims.length; i++) {
    const d = dims[dims.length - i];
    if (d !== 1 && d !== target[target.length - i]) return false;
  }
  return true;
}

/** Materialises a broadcastable tensor at the full target shape. */
export function expandTo(t: Tensor, target: number[]): Tensor {
  const out = new Float32Array(numel(target));
  const st = broadcastStrides(t.dims, target);
  const idx = new Array<number>(target.length).fill(0);
  let src = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = t.data[src];
    for (let a = target.length - 1; a >= 0; a--) {
      idx[a]++;
      src += st[a];
      if (idx[a] < target[a]) break;
      src -= st[a] * target[a];
      idx[a] = 0;
    }
  }
  return { data: out, dims: target };
}

/** Indices `idx` along axis `axis` of a row-major tensor. */
export function takeAxis(t: Tensor, axis: number, idx: number[]): Tensor {
  const n = t.dims[axis];
  const inner = t.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = t.data.length / (n * inner);
  const data = new Float32Array(outer * idx.length * inner);
  for (let o = 0; o < outer; o++) {
    idx.forEach((j, i) => data.set(t.data.subarray((o * n + j) * inner, (o * n + j + 1) * inner), (o * idx.length + i) * inner));
  }
  return { data, dims: t.dims.map((d, a) => (a === axis ? idx.length : d)) };
}
