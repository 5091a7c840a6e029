// Where the reverse pass meets the hook list: at each hook it records the gradient (when asked)
// and passes it back through that hook's intervention, x' = x (1 - mask) + mask value + add, whose
// derivative w.r.t. x is (1 - mask).
import type { ResolvedIntervention } from '../intervention.ts';
import { expandTo, type Tensor } from '../tensor.ts';

export class HookGrads {
  readonly out = new Map<string, Tensor>();

  constructor(private readonly want: ReadonlySet<string>, private readonly ivs: ReadonlyMap<string, ResolvedIntervention>) {}

  /** True when the gradient at this hook is asked for or the hook is intervened on. */
  touches(name: string): boolean {
    return this.want.has(name) || this.ivs.has(name);
  }

  /** Records g (the gradient w.r.t. the hook's value as downstream code sees it), then applies (1 - mask) in place. */
  at(name: string, g: Float64Array, dims: number[]): void {
    this.record(name, g, dims);
    const keep = this.keep(name, dims);
    if (keep) for (let i = 0; i < g.length; i++) g[i] *= keep[i];
  }

  /** Stores g as the hook's gradient when it was asked for. */
  record(name: string, g: Float64Array, dims: number[]): void {
    if (this.want.has(name)) this.out.set(name, { data: Float32Array.from(g), dims: [...dims] });
  }

  /** (1 - mask) at the hook's full shape, or null when the hook is not intervened on. */
  keep(name: string, dims: number[]): Float32Array | null {
    const iv = this.ivs.get(name);
    if (!iv) return null;
    const m = expandTo(iv.mask, dims).data;
    for (let i = 0; i < m.length; i++) m[i] = 1 - m[i];
    return m;
  }

  /** Every asked-for hook has been recorded. */
  get done(): boolean {
    for (const n of this.want) if (!this.out.has(n)) return false;
    return true;
  }
}
