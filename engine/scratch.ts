// Reused buffers for a run's large intermediates (stacked expert rows, their activations and
// outputs). Fresh memory is what costs on a loaded machine: every new large typed array is
// page-faulted in and zeroed by the kernel (measured 14 ms/MiB under load, vs 0.05 ms/MiB to
// rewrite memory already touched), so a layer reuses the previous layer's buffers.
// Nothing handed out here may outlive the step that asked for it: it is overwritten by the next.
export class Scratch {
  private readonly f32s = new Map<string, Float32Array<ArrayBuffer>>();
  private readonly f64s = new Map<string, Float64Array<ArrayBuffer>>();

  /** A float32 buffer of exactly n values named `name`, with unspecified contents. */
  f32(name: string, n: number): Float32Array<ArrayBuffer> {
    let b = this.f32s.get(name);
    if (!b || b.length < n) this.f32s.set(name, (b = new Float32Array(n)));
    return b.subarray(0, n);
  }

  /** A float64 buffer of exactly n values named `name`, zeroed. */
  zeroF64(name: string, n: number): Float64Array<ArrayBuffer> {
    let b = this.f64s.get(name);
    if (!b || b.length < n) this.f64s.set(name, (b = new Float64Array(n)));
    const out = b.subarray(0, n);
    out.fill(0);
    return out;
  }

  /** Bytes held. */
  get bytes(): number {
    let n = 0;
    for (const b of [...this.f32s.values(), ...this.f64s.values()]) n += b.byteLength;
    return n;
  }
}
