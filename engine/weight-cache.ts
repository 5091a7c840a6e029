// Dequantised weights kept in memory up to a byte budget, least recently used first out. At
// gpt-oss-20b size every expert of every layer in float32 is ~76 GB, so experts stream from the
// (MXFP4) file and only what fits stays; small models keep everything.
export class WeightCache {
  private readonly entries = new Map<string, { value: unknown; bytes: number }>();
  private used = 0;

  constructor(private readonly budgetBytes: number) {}

  get bytes(): number {
    return this.used;
  }

  /** The cached value, or load it (and keep it if it fits, evicting the least recently used). */
  get<T extends object>(key: string, load: () => T): T {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.value as T;
    }
    const value = load();
    const bytes = Object.values(value).reduce((n: number, a: Float32Array) => n + a.byteLength, 0);
    if (bytes > this.budgetBytes) return value;
    for (const [k, e] of this.entries) {
      if (this.used + bytes <= this.budgetBytes) break;
      this.entries.delete(k);
      this.used -= e.bytes;
    }
    this.entries.set(key, { value, bytes });
    this.used += bytes;
    return value;
  }

  clear(): void {
    this.entries.clear();
    this.used = 0;
  }
}
