// YaRN rotary tables exactly as the gpt-oss reference computes them (float32 steps emulated with
// Math.fround so positions far into a long context keep the reference's rounding).
import type { GptOssConfig } from './config.ts';

const f = Math.fround;

export interface RopeTables {
  /** [T, d/2] cos(p * inv_freq[i]) * concentration */
  cos: Float32Array;
  sin: Float32Array;
  half: number;
}

export function ropeInvFreq(config: Pick<GptOssConfig, 'headDim' | 'ropeTheta' | 'rope'>): { invFreq: Float32Array; concentration: number } {
  const d = config.headDim;
  const half = d / 2;
  const base = config.ropeTheta;
  const freq = new Float64Array(half);
  for (let i = 0; i < half; i++) freq[i] = f(Math.pow(base, f((2 * i) / d)));
  const invFreq = new Float32Array(half);
  const rope = config.rope;
  if (!rope || rope.factor <= 1) {
    for (let i = 0; i < half; i++) invFreq[i] = f(1 / freq[i]);
    return { invFreq, concentration: 1 };
  }
  const concentration = f(0.1 * Math.log(rope.factor) + 1);
  const L0 = rope.originalMaxPositionEmbeddings;
  let low = (half * Math.log(L0 / (rope.betaFast * 2 * Math.PI))) / Math.log(base);
  let high = (half * Math.log(L0 / (rope.betaSlow * 2 * Math.PI))) / Math.log(base);
  if (rope.truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  for (let i = 0; i < half; i++) {
    const interpolation = f(1 / f(rope.factor * freq[i]));
    const extrapolation = f(1 / freq[i]);
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const mask = f(1 - f(ramp));
    invFreq[i] = f(f(interpolation * f(1 - mask)) + f(extrapolation * mask));
  }
  return { invFreq, concentration };
}

/** Tables for positions start..start+length-1 (a KV-cached step starts after the cached positions). */
export function ropeTables(config: Pick<GptOssConfig, 'headDim' | 'ropeTheta' | 'rope'>, length: number, start = 0): RopeTables {
  const { invFreq, concentration } = ropeInvFreq(config);
  const half = invFreq.length;
  const cos = new Float32Array(length * half);
  const sin = new Float32Array(length * half);
  for (let r = 0; r < length; r++) {
    const p = start + r;
    for (let i = 0; i < half; i++) {
      const angle = f(p * invFreq[i]);
      cos[r * half + i] = f(f(Math.cos(angle)) * concentration);
      sin[r * half + i] = f(f(Math.sin(angle)) * concentration);
    }
  }
  return { cos, sin, half };
}
