// gpt-oss-tiny, size s: every planted behaviour for three seeds (0 is the default model; 1234 and
// 98765 were picked arbitrarily and never used to tune the construction), plus build determinism and
// the default model (realistic; the suites here pin the clean style). tiny-m runs in tiny-m.test.ts (a separate file so the two run in parallel).
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildTinyModel, ensureDefaultModel, ensureTinyModel, readManifest } from '../../engine/tiny/index.ts';
import { describeTinyModel, scratchDir } from './tiny-suite.ts';

const scratch = scratchDir();
const SEEDS = [0, 1234, 98765];
for (const seed of SEEDS) describeTinyModel('tiny-s', seed, scratch);

describe('gpt-oss-tiny builds', () => {
  it('ensureDefaultModel builds realistic tiny-s seed 0 once, byte-identical to a separate build (deterministic)', () => {
    const data = join(scratch, 'data');
    const dir = ensureDefaultModel(data);
    expect(dir).toBe(join(data, 'models', 'tiny-s-seed0'));
    expect(readManifest(dir).style).toBe('realistic');
    const other = join(scratch, 'tiny-s-0-realistic');
    buildTinyModel('tiny-s', 0, other);
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'manifest.json']) {
      expect(readFileSync(join(dir, f)).equals(readFileSync(join(other, f))), f).toBe(true);
    }
    const before = readFileSync(join(dir, 'manifest.json'), 'utf8');
    expect(ensureDefaultModel(data)).toBe(dir); // second call reuses the build
    expect(readFileSync(join(dir, 'manifest.json'), 'utf8')).toBe(before);
    // the clean style lives beside it
    expect(ensureTinyModel(data, 'tiny-s', 0, 'clean')).toBe(join(data, 'models', 'tiny-s-clean-seed0'));
    expect(readManifest(join(data, 'models', 'tiny-s-clean-seed0')).style).toBe('clean');
  }, 600_000); // three builds, two of them realistic (a dense build check)

  it('seeds relocate the planted roles', () => {
    const placements = new Set(SEEDS.map((seed) => {
      const m = readManifest(join(scratch, `tiny-s-${seed}`));
      return JSON.stringify([m.roles['ioi.name_mover'], m.roles['induction.induction_head'], m.roles['successor.expert'], m.roles['sentiment.reader_head']]);
    }));
    expect(placements.size).toBe(SEEDS.length);
  });
});
