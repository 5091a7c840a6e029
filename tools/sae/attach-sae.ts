// attach_sae: splice a dictionary (a stored saeId, or a SAELens folder on disk, which is then
// recorded) into the loaded model, so its latents are hooks for capture, patching, ablation and
// steering; or detach the one at a hook.
import { z } from 'zod';
import { saeHooksAt } from '../../engine/hook-address.ts';
import { defineTool, ToolError } from '../define.ts';
import { attachDictionary, importDictionary, loadDictionary } from './registry.ts';

export const attachSaeInput = z.strictObject({
  saeId: z.string().min(1).optional().describe('a dictionary in the store (train_sae output, or an earlier import)'),
  path: z.string().min(1).optional().describe('a SAELens folder (cfg.json + sae_weights.safetensors) to import and attach'),
  detach: z.string().min(1).optional().describe('instead: remove the dictionary attached at this hook'),
});

export const attachSaeOutput = z.object({
  attached: z.array(z.object({ site: z.string(), saeId: z.string(), dSae: z.number().int(), architecture: z.string(), hooks: z.array(z.string()) })).describe('every dictionary attached now'),
  saeId: z.string().nullable().describe('the dictionary this call attached (null for detach)'),
});

export const attachSaeTool = defineTool({
  name: 'attach_sae',
  description: 'Splice a sparse dictionary into the loaded model at the hook it reads (by saeId, or a SAELens folder path, which is imported into the store). Its latents then are hooks: capture blocks.L.<hook>.sae.hook_sae_acts (stored sparsely in sae_latents) or .sae.hook_sae_error, patch, ablate or steer them. Untouched, the forward is unchanged. `detach: <hook>` removes one.',
  input: attachSaeInput,
  output: attachSaeOutput,
  async run(input, ctx): Promise<z.infer<typeof attachSaeOutput>> {
    const given = [input.saeId, input.path, input.detach].filter((x) => x !== undefined).length;
    if (given !== 1) throw new ToolError('give exactly one of saeId (stored dictionary), path (SAELens folder) or detach (a hook)');
    let saeId: string | null = null;
    if (input.detach) {
      const gone = ctx.session.model.detachSae(input.detach);
      if (!gone) throw new ToolError(`no dictionary is attached at ${input.detach}; attached: ${ctx.session.model.attachedSaes.map((a) => a.site).join(', ') || 'none'}`);
      await gone.runner.release();
    } else {
      const { dict, saeId: id } = input.path ? await importDictionary(ctx, input.path) : { ...(await loadDictionary(ctx, input.saeId!)), saeId: input.saeId! };
      await attachDictionary(ctx, id, dict);
      saeId = id;
    }
    return {
      saeId,
      attached: ctx.session.model.attachedSaes.map((a) => ({
        site: a.site, saeId: a.saeId, dSae: a.runner.dict.dSae, architecture: a.runner.dict.architecture,
        hooks: Object.values(saeHooksAt(a.site)),
      })),
    };
  },
});
