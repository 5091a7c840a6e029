// Access to the reference fixtures copied from OpenAI's implementation (tests/fixtures/gpt-oss-ref).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorBytes, toFloat32 } from '../../engine/safetensors.ts';

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'gpt-oss-ref');
export const fixtureDir = (name: 'ref-a' | 'ref-b') => join(FIXTURES, name);

export interface FixtureCase {
  name: string;
  tokens: number[];
  expected: (what: string) => { data: Float32Array; dims: number[] };
}

export function fixtureCases(name: 'ref-a' | 'ref-b'): FixtureCase[] {
  const dir = fixtureDir(name);
  const meta = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { cases: Record<string, { tokens: number[] }> };
  const header = readSafetensorsHeader(join(dir, 'expected.safetensors'));
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  return Object.entries(meta.cases).map(([c, { tokens }]) => ({
    name: c,
    tokens,
    expected: (what: string) => {
      const info = byName.get(`${c}.${what}`);
      if (!info) throw new Error(`fixture ${name} has no tensor ${c}.${what}`);
      return { data: toFloat32(info, readTensorBytes(info)), dims: info.shape };
    },
  }));
}

/** max |a - b| / max |b| */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

export function maxAbsErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
