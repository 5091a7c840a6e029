// A dictionary spliced into the forward: its latents and error are hooks. Attached and untouched it
// leaves the run bit for bit unchanged; ablating or steering a latent moves the hook by exactly that
// latent's decoder row; capture sees decode(acts) + error = the hook's value.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GptOssModel } from '../../engine/model.ts';
import { Rng } from '../../engine/rng.ts';
import { DictionaryRunner, type SparseDictionary } from '../../engine/sae/dictionary.ts';
import { writeRandomWordModel } from '../helpers/random-model.ts';

const root = mkdtempSync(join(tmpdir(), 'sae-hooks-'));
let model: GptOssModel;
const H = 64;
const S = 96;
const site = 'blocks.1.hook_resid_post';
let dict: SparseDictionary;
const batch = [[1, 5, 9, 13, 2], [7, 3, 11]];

beforeAll(() => {
  writeRandomWordModel(root, 17);
  model = GptOssModel.load(root, { threads: 1 });
  const rng = new Rng(4);
  const n = (len: number, s: number) => Float32Array.from({ length: len }, () => rng.normal() * s);
  dict = {
    architecture: 'topk', k: 8, dIn: H, dSae: S, dOut: H, hook: site, modelName: 'random', applyBDecToInput: true,
    wEnc: n(H * S, 0.2), bEnc: n(S, 0.1), wDec: n(S * H, 0.2), bDec: n(H, 0.1),
  };
});
afterAll(async () => {
  await model.dispose();
  rmSync(root, { recursive: true, force: true });
});

describe('dictionary hooks', () => {
  it('are refused with a clear message while no dictionary is attached, and only at JS-computed block hooks', async () => {
    await expect(model.run(batch, { capture: [`${site}.sae.hook_sae_acts`] })).rejects.toThrow(/no dictionary is attached at blocks\.1\.hook_resid_post; attach one first/);
    await expect(model.run(batch, { capture: ['blocks.1.attn.hook_z.sae.hook_sae_acts'] })).rejects.toThrow(/dictionaries splice in at blocks\.L\.\{hook_resid_pre, hook_mlp_out, hook_resid_post\} only/);
    const transcoder = { ...dict, hookOut: 'blocks.1.hook_mlp_out', applyBDecToInput: false };
    expect(() => model.attachSae({ site: 'blocks.1.ln2.hook_normalized', saeId: 't', runner: new DictionaryRunner(transcoder, 1) })).toThrow(/splice in at/);
    expect(() => model.attachSae({ site, saeId: 't', runner: new DictionaryRunner(transcoder, 1) })).toThrow(/is a transcoder/);
  });

  it('attached and untouched, the forward is unchanged bit for bit; captured acts and error add up to the hook', async () => {
    const plain = await model.run(batch, { capture: [site], logits: 'all' });
    model.attachSae({ site, saeId: 'sae_test', runner: new DictionaryRunner(dict, 1) });
    const r = await model.run(batch, { capture: [site, `${site}.sae.hook_sae_acts`, `${site}.sae.hook_sae_error`], logits: 'all' });
    expect(r.logits!.data).toEqual(plain.logits!.data);
    const acts = r.cache.get(`${site}.sae.hook_sae_acts`)!;
    const err = r.cache.get(`${site}.sae.hook_sae_error`)!;
    expect(acts.dims).toEqual([2, 5, S]);
    expect(err.dims).toEqual([2, 5, H]);
    const x = r.cache.get(site)!;
    for (let tok = 0; tok < 10; tok++) {
      const a = acts.data.subarray(tok * S, (tok + 1) * S);
      expect(a.filter((v) => v > 0).length).toBeLessThanOrEqual(8);
      expect(a.filter((v) => v > 0).length).toBeGreaterThan(0);
      for (let h = 0; h < H; h++) {
        let recon = dict.bDec[h];
        for (let j = 0; j < S; j++) recon += a[j] * dict.wDec[j * H + h];
        expect(recon + err.data[tok * H + h]).toBeCloseTo(x.data[tok * H + h], 4);
      }
    }
  });

  it('ablating one latent removes exactly its decoder row times its activation; steering adds c times the row', async () => {
    const base = await model.run(batch, { capture: [`${site}.sae.hook_sae_acts`, 'blocks.2.hook_resid_pre'], logits: 'all' });
    const acts = base.cache.get(`${site}.sae.hook_sae_acts`)!;
    // The latent most active on row 0, position 2.
    const at = 2 * S;
    let j = 0;
    for (let i = 1; i < S; i++) if (acts.data[at + i] > acts.data[at + j]) j = i;
    const a = acts.data[at + j];
    expect(a).toBeGreaterThan(0);
    const mask = new Float32Array(S);
    mask[j] = 1;
    const ablated = await model.run(batch, {
      capture: ['blocks.2.hook_resid_pre'], logits: 'all',
      interventions: [{ hook: `${site}.sae.hook_sae_acts`, mask: { data: mask, dims: [1, 1, S] }, value: { data: Float32Array.of(0), dims: [1] } }],
    });
    const c = 3;
    const steered = await model.run(batch, {
      capture: ['blocks.2.hook_resid_pre'], logits: 'all',
      interventions: [{ hook: `${site}.sae.hook_sae_acts`, add: { data: mask.map((m) => m * c), dims: [1, 1, S] } }],
    });
    const before = base.cache.get('blocks.2.hook_resid_pre')!.data;
    const ab = ablated.cache.get('blocks.2.hook_resid_pre')!.data;
    const st = steered.cache.get('blocks.2.hook_resid_pre')!.data;
    const o = 2 * H;
    for (let h = 0; h < H; h++) {
      expect(ab[o + h] - before[o + h]).toBeCloseTo(-a * dict.wDec[j * H + h], 4);
      expect(st[o + h] - before[o + h]).toBeCloseTo(c * dict.wDec[j * H + h], 4);
    }
    // The logits moved (the change propagates), and zeroing the error instead changes them too.
    expect(ablated.logits!.data).not.toEqual(base.logits!.data);
    model.detachSae(site)?.runner.release();
    await expect(model.run(batch, { capture: [`${site}.sae.hook_sae_acts`] })).rejects.toThrow(/no dictionary is attached/);
  });
});
