// Bad inputs are refused in one place (callTool), before any work, with what was wrong and what is
// valid: unknown argument names (with the nearest valid one), empty sweeps, repeated components,
// components that do not exist on the hook, hooks that match nothing, words outside the vocabulary
// (unless allowUnknown, which then puts warnings on the result) and answers that are not one token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ablateTool, callTool, captureTool, patchTool, similarityTool, steerTool, type ToolContext } from '../../tools/index.ts';
import { openRandomWordWorkspace } from '../helpers/random-model.ts';

let ctx: ToolContext;
let close: () => Promise<void>;
beforeAll(async () => ({ ctx, close } = await openRandomWordWorkspace('ns-strict-')));
afterAll(() => close());

const clean = ['w1 w2 w3 w4 w5 w1 w7'];
const corrupted = ['w1 w2 w3 w4 w5 w6 w7'];
const task = { clean, corrupted, target: 'w2', distractor: 'w3' };
const count = async (sql: string) => Number((await ctx.store.query(sql)).rows[0][0]);

describe('arguments', () => {
  it('an unknown argument name is refused with the nearest valid one (layer for layers runs nothing)', async () => {
    const before = await count('SELECT count(*) FROM experiments');
    await expect(callTool(patchTool, { ...task, site: 'head', layer: 1 }, ctx)).rejects.toThrow(/unknown argument "layer" \(did you mean "layers"\?\); valid: clean, corrupted, target/);
    await expect(callTool(steerTool, { prompts: clean, ...task, layer: 1, vector: { positive: ['w1'], negatve: ['w2'] } }, ctx)).rejects.toThrow(/vector: unknown argument "negatve" \(did you mean "negative"\?\)/);
    expect(await count('SELECT count(*) FROM experiments')).toBe(before);
  });

  it('empty sweeps are refused (layers: [], positions: [])', async () => {
    await expect(callTool(patchTool, { ...task, site: 'resid_pre', layers: [] }, ctx)).rejects.toThrow(/layers: give at least one layer, or leave the argument out/);
    await expect(callTool(patchTool, { ...task, site: 'resid_pre', positions: [] }, ctx)).rejects.toThrow(/positions: give at least one position/);
    await expect(callTool(captureTool, { prompts: clean, hooks: ['hook_embed'], positions: [] }, ctx)).rejects.toThrow(/positions: give at least one position/);
  });

  it('repeated components are refused, and a call cannot name thousands of them', async () => {
    await expect(callTool(ablateTool, { prompts: clean, target: 'w2', distractor: 'w3', components: ['L1.H0', 'L1.H1', 'L1.H0'] }, ctx))
      .rejects.toThrow(/components: lists L1\.H0 more than once; give each component once/);
    await expect(callTool(ablateTool, { prompts: clean, target: 'w2', distractor: 'w3', components: Array(5000).fill('L1.H0') }, ctx))
      .rejects.toThrow(/lists L1\.H0 more than once/);
    // The cap is ablate's declared limit, named in the refusal.
    await expect(callTool(ablateTool, { prompts: clean, target: 'w2', distractor: 'w3', components: Array.from({ length: 600 }, (_, i) => `L0.E0.N${i}`) }, ctx))
      .rejects.toThrow(/ablate: components has 600 entries; give at most 512 in one call \(limit ablate\.components = 512/);
    await expect(callTool(patchTool, { ...task, site: 'head', heads: [1, 1] }, ctx)).rejects.toThrow(/heads: lists 1 more than once/);
  });
});

describe('declared limits', () => {
  it('each tool\'s declared sizes are checked after parsing, and the refusal names the limit', async () => {
    const before = await count('SELECT count(*) FROM runs');
    // capture declares its sweep: layers (from the hooks) x positions x prompts.
    await expect(callTool(captureTool, { prompts: Array(256).fill('w1'), hooks: ['blocks.0.hook_resid_pre'], positions: [...Array(2000).keys()] }, ctx))
      .rejects.toThrow(/capture_activations: layers x positions x batch = 1 x 2000 x 256 = 512000.*limit maxSweepCells = 500000/);
    // steer declares its contrast prompts as prompts: they count towards the prompt cap.
    await expect(callTool(steerTool, { prompts: clean, target: 'w2', distractor: 'w3', layer: 1, vector: { positive: Array(300).fill('w1'), negative: Array(300).fill('w2') } }, ctx))
      .rejects.toThrow(/steer: this call has 601 prompts.*limit maxPromptsPerCall = 512/);
    expect(await count('SELECT count(*) FROM runs')).toBe(before);
  });
});

describe('components and hooks', () => {
  it('capture components are checked against the hook\'s head axis', async () => {
    const heads = ctx.session.config.numHeads;
    for (const c of [heads, 99, -1]) {
      await expect(callTool(captureTool, { prompts: clean, hooks: ['blocks.0.attn.hook_z'], components: [c] }, ctx))
        .rejects.toThrow(new RegExp(`components ${c} do not exist on blocks\\.0\\.attn\\.hook_z \\(\\[B, T, nH, d\\]\\): valid 0\\.\\.${heads - 1}`));
    }
    await expect(callTool(captureTool, { prompts: clean, hooks: ['blocks.0.hook_resid_post'], components: [0] }, ctx)).rejects.toThrow(/has no head or expert axis/);
    // A valid head is stored under its own index, with that head's values.
    const ok = await callTool(captureTool, { prompts: clean, hooks: ['blocks.0.attn.hook_z'], components: [heads - 1], positions: [1] }, ctx);
    const rows = await ctx.store.query(`SELECT component, vec FROM activations WHERE run_id = '${ok.runIds[0]}'`);
    expect(rows.rows.map((r) => r[0])).toEqual([heads - 1]);
    const direct = await ctx.session.model.run([ctx.session.encode(clean[0]).ids], { capture: ['blocks.0.attn.hook_z'] });
    const z = direct.cache.get('blocks.0.attn.hook_z')!;
    const d = z.dims[3];
    const at = (1 * heads + (heads - 1)) * d;
    expect(rows.rows[0][1]).toEqual(Array.from(z.data.subarray(at, at + d)));
  });

  it('a hook that matches nothing is an error naming the nearest hooks', async () => {
    await expect(callTool(captureTool, { prompts: clean, hooks: ['blocks.01.hook_resid_post'] }, ctx)).rejects.toThrow(/write the layer as a plain number: blocks\.1\.hook_resid_post/);
    await expect(callTool(captureTool, { prompts: clean, hooks: ['blocks.1.hook_resid_pst'] }, ctx)).rejects.toThrow(/nearest: blocks\.1\.hook_resid_post/);
    await expect(callTool(similarityTool, { query: { vector: [1, 2] }, hooks: ['blocks.*.hook_resid_pots'] }, ctx)).rejects.toThrow(/nearest: blocks\.\*\.hook_resid_post/);
  });
});

describe('words outside the vocabulary', () => {
  it('a target outside the vocabulary is refused, naming the word and the nearest words', async () => {
    const before = await count('SELECT count(*) FROM experiments');
    await expect(callTool(patchTool, { ...task, site: 'head', target: 'Zebra123' }, ctx))
      .rejects.toThrow(/target "Zebra123" has words outside the model's vocabulary, which all become the unknown token "\[UNK\]": "Zebra123".*allowUnknown: true/);
    await expect(callTool(patchTool, { ...task, site: 'head', target: 'w1x' }, ctx)).rejects.toThrow(/"w1x" \(nearest in the vocabulary: w1, w10, w11\)/);
    expect(await count('SELECT count(*) FROM experiments')).toBe(before);
  });

  it('a steering contrast of unknown words is refused instead of steering along a zero vector', async () => {
    await expect(callTool(steerTool, { prompts: clean, target: 'w2', distractor: 'w3', layer: 1, vector: { positive: ['I love it'], negative: ['I hate it'] }, generateTokens: 0 }, ctx))
      .rejects.toThrow(/prompt "I love it" has words outside the model.s vocabulary, which all become the unknown token "\[UNK\]": "I"; "love"; "it"/);
  });

  it('with allowUnknown: true the call runs and its result carries the warnings', async () => {
    const r = await callTool(patchTool, { ...task, site: 'head', layers: [0], distractor: 'Zebra123', allowUnknown: true }, ctx);
    expect(r.warnings).toEqual([expect.stringMatching(/^distractor "Zebra123" has words outside the model's vocabulary/)]);
    const plain = await callTool(patchTool, { ...task, site: 'head', layers: [0] }, ctx);
    expect(plain.warnings).toBeUndefined();
  });

  it('an answer that is several tokens says how it tokenizes', async () => {
    await expect(callTool(ablateTool, { prompts: clean, target: 'w2 w3', distractor: 'w4', components: ['L0.H0'] }, ctx))
      .rejects.toThrow(/target "w2 w3" is 2 tokens \("w2" "w3"\); it must be exactly one token/);
  });
});
