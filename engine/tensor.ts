// The engine's one tensor form: float32 data in row-major order with its dims.
export interface Tensor {
  data: Float32Array;
  dims: number[];
}

export const numel = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

export function tensor(data: Float32Array, dims: number[]): Tensor {
  if (data.length !== numel(dims)) throw new Error(`tensor data has ${data.length} values but dims [${dims}] need ${numel(dims)}`);
  return { data, dims };
}

export const zeros = (dims: number[]): Tensor => ({ data: new Float32Array(numel(dims)), dims });

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

/** Left-pads dims with 1s to the given rank (ONNX broadcasting wants equal ranks for our inputs). */
export function toRank(t: Tensor, rank: number): Tensor {
  return t.dims.length === rank ? t : { data: t.data, dims: [...new Array(rank - t.dims.length).fill(1), ...t.dims] };
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

/** Rows [start, start+count) along axis 0. Shares memory with the source. */
export function sliceRows(t: Tensor, start: number, count: number): Tensor {
  const row = numel(t.dims.slice(1));
  return { data: t.data.subarray(start * row, (start + count) * row), dims: [count, ...t.dims.slice(1)] };
}

/** Concatenates tensors along axis 0. */
export function concatRows(parts: Tensor[]): Tensor {
  const rest = parts[0].dims.slice(1);
  const total = parts.reduce((n, p) => n + p.dims[0], 0);
  const out = new Float32Array(total * numel(rest));
  let off = 0;
  for (const p of parts) {
    out.set(p.data, off);
    off += p.data.length;
  }
  return { data: out, dims: [total, ...rest] };
}
