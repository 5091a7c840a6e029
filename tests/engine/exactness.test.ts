// The engine against what OpenAI's reference implementation computed on the fixtures.
// These tolerances are the project's contract: never skip or loosen them.
import { afterAll, describe, expect, it } from 'vitest';
import { GptOssModel } from '../../engine/model.ts';
import { fixtureCases, fixtureDir, maxAbsErr, relErr } from '../helpers/fixtures.ts';

for (const fixture of ['ref-a', 'ref-b'] as const) {
  describe(`exactness on ${fixture}`, () => {
    const model = GptOssModel.load(fixtureDir(fixture), { threads: 1 });
    const L = model.config.numLayers;
    afterAll(() => model.dispose());

    for (const c of fixtureCases(fixture)) {
      it(`${c.name}: logits, residuals, patterns and routing match the reference`, async () => {
        const r = await model.run([c.tokens], {
          logits: 'all',
          capture: ['hook_embed', 'blocks.*.hook_resid_mid', 'blocks.*.hook_resid_post', 'blocks.*.attn.hook_pattern',
            'blocks.*.mlp.hook_router_logits', 'blocks.*.mlp.hook_expert_indices', 'blocks.*.mlp.hook_expert_weights'],
        });
        const logitErr = relErr(r.logits!.data, c.expected('logits').data);
        expect(logitErr).toBeLessThanOrEqual(1e-4);
        expect(maxAbsErr(r.cache.get('hook_embed')!.data, c.expected('embed').data)).toBe(0);
        const stack = (local: string) => {
          const parts = Array.from({ length: L }, (_, l) => r.cache.get(`blocks.${l}.${local}`)!.data);
          const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
          let o = 0;
          for (const p of parts) { out.set(p, o); o += p.length; }
          return out;
        };
        expect(relErr(stack('hook_resid_mid'), c.expected('resid_mid').data)).toBeLessThanOrEqual(1e-4);
        expect(relErr(stack('hook_resid_post'), c.expected('resid_post').data)).toBeLessThanOrEqual(1e-4);
        expect(maxAbsErr(stack('attn.hook_pattern'), c.expected('pattern').data)).toBeLessThanOrEqual(1e-4);
        expect(relErr(stack('mlp.hook_router_logits'), c.expected('router_logits').data)).toBeLessThanOrEqual(1e-4);
        expect(Array.from(stack('mlp.hook_expert_indices'))).toEqual(Array.from(c.expected('expert_indices').data));
        expect(maxAbsErr(stack('mlp.hook_expert_weights'), c.expected('expert_weights').data)).toBeLessThanOrEqual(1e-4);
        console.log(`${fixture}/${c.name}: logits rel err ${logitErr.toExponential(2)}`);
      });
    }
  });
}
