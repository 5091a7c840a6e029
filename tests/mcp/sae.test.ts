// Dictionaries through MCP on a planted gpt-oss-tiny model (a seed used nowhere else): train_sae
// where the sentiment reader writes, feature_search finds the positive and negative latents, and
// feature_intervention moves the planted sentiment prediction the way those latents say: ablating
// the positive latent on positive examples lowers logit(target) - logit(distractor), steering it
// into negative examples lowers theirs. The test reads the manifest for ground truth; the server does not.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildTinyModel, type Manifest } from '../../engine/tiny/index.ts';
import { data, isError, stdioClient, text, type StdioHandle } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-mcp-sae-'));
let h: StdioHandle;
let manifest: Manifest;

beforeAll(async () => {
  manifest = buildTinyModel('tiny-s', 6161, join(root, 'model'));
  h = await stdioClient(join(root, 'model'), join(root, 'data'));
}, 60_000);
afterAll(async () => {
  await h?.close();
  rmSync(root, { recursive: true, force: true });
});

async function call(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const r = await h.client.callTool({ name, arguments: args }, undefined, { timeout: 590_000 });
  expect(isError(r), text(r)).toBe(false);
  return data(r);
}

it('feature ablation and steering through MCP move the planted sentiment behaviour as expected', async () => {
  const layer = Number(/^L(\d+)\./.exec((manifest.roles['sentiment.reader_head'] as string[])[0])![1]);
  const trained = await call('train_sae', { hook: `blocks.${layer}.hook_resid_post`, steps: 400 });
  expect(trained.latentHooks).toHaveLength(2);
  const { positive, negative } = manifest.tasks.sentiment.contrast;
  const search = await call('feature_search', { saeId: trained.saeId, classes: { positive, negative }, top: 3 });
  const groups = search.results as { group: string; latents: { latent: number; selectivity: number }[] }[];
  const pos = groups.find((g) => g.group === 'positive')!.latents[0];
  expect(pos.selectivity).toBeGreaterThan(0.2);

  const P = new Set(manifest.words.positive);
  const args = (pick: (target: string) => boolean) => {
    const es = manifest.tasks.sentiment.examples.filter((e) => pick(e.target));
    return { prompts: es.map((e) => e.prompt), target: es.map((e) => e.target), distractor: es.map((e) => e.distractor) };
  };
  const ablated = await call('feature_intervention', { saeId: trained.saeId, ...args((t) => P.has(t)), latents: [pos.latent], action: 'ablate' });
  expect(ablated.before as number).toBeGreaterThan(0);
  expect(ablated.after as number).toBeLessThan((ablated.before as number) - 0.3);
  const steered = await call('feature_intervention', { saeId: trained.saeId, ...args((t) => !P.has(t)), latents: [pos.latent], action: 'steer', coefficient: 4 });
  expect(steered.after as number).toBeLessThan((steered.before as number) - 1);
}, 600_000);
