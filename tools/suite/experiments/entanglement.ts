// Experiment 5: cross-domain feature entanglement: neurons active across math, code and prose,
// and activation similarity across domains.
import { blockHook } from '../../../engine/hook-address.ts';
import { callTool } from '../../define.ts';
import { featureSearchTool } from '../../sae/features.ts';
import { trainSaeTool } from '../../sae/train-sae.ts';
import { num, table } from '../markdown.ts';
import { bars, makePlot } from '../plots.ts';
import { domainNeighbours, domainNeurons } from '../entanglement-steps.ts';
import { inProcessPort } from '../port.ts';
import type { Experiment, ExperimentReport } from '../types.ts';

export const entanglement: Experiment = {
  id: 5,
  slug: 'cross-domain-entanglement',
  title: 'Cross-domain feature entanglement',
  async run(env): Promise<ExperimentReport> {
    const { ctx, prompts } = env;
    const domains = prompts.domains;
    // The selectivity and similarity steps are shared with the agent's entanglement protocol
    // (tools/suite/entanglement-steps.ts); the dictionary below is the suite's addition.
    const port = inProcessPort(ctx, env.step);
    const { names, sel, poly } = await domainNeurons(port, domains);
    const chart = [...sel.crossDomain.slice(0, 3), ...names.flatMap((d) => sel.perDomain[d].slice(0, 2))];
    const plot = await makePlot('selectivity.svg', 'selectivity', bars('Mean activation per domain', chart.flatMap((n) => names.map((d) => ({ item: n.neuron, value: n.means[d], group: d }))), 'neuron', 'mean activation', 'domain'));
    const near = await domainNeighbours(port, domains, poly.layer);
    const neighbours = near.neighbours;
    const cap = { runIds: near.runIds };

    // The polysemantic neuron's layer through a sparse dictionary: does it separate the domains the
    // neuron mixes? A short TopK SAE on the MoE output over the built-in corpus, then per-domain latents.
    const saeHook = blockHook(poly.layer, 'hook_mlp_out');
    env.step(`sparse dictionary at ${saeHook} (TopK SAE on the built-in corpus)`);
    const sae = await callTool(trainSaeTool, { hook: saeHook, steps: 300 }, ctx);
    const search = await callTool(featureSearchTool, { saeId: sae.saeId, classes: domains, top: 3 }, ctx);
    const bestLatent = Object.fromEntries(search.results.map((g) => [g.group, g.latents[0]]));

    const body = [
      `${names.map((d) => `${domains[d].length} ${d}`).join(', ')} prompts; every neuron's (mlp.hook_post) mean activation per domain over all tokens, counting tokens not routed to its expert as 0.`,
      '', '![selectivity](selectivity.svg)', '',
      '### Neurons active across domains',
      table(['neuron', ...names.map((d) => `mean on ${d}`), 'cross-domain score'], sel.crossDomain.slice(0, 5).map((n) => [n.neuron, ...names.map((d) => n.means[d]), n.cross])),
      '', '### Neurons selective to one domain',
      table(['domain', 'neuron', ...names.map((d) => `mean on ${d}`), 'selectivity'], names.flatMap((d) => sel.perDomain[d].slice(0, 3).map((n) => [d, n.neuron, ...names.map((x) => n.means[x]), n.selectivity]))),
      '', `### Similarity search at \`${near.hook}\` (last token, cosine, in DuckDB)`,
      table(['query prompt', 'its domain', ...names.map((d) => `${d} among 6 nearest`)], neighbours.map((n) => [n.from, n.domain, ...names.map((d) => n.hits[d])])),
      '', 'The nearest neighbours (the query itself excluded; search limited to this experiment\'s runs):', '',
      table(['query domain', 'neighbour', 'its domain', 'cosine'], neighbours.flatMap((n) => n.list.map((h) => [n.domain, h.prompt, h.domain, h.cos]))),
      '', `### Sparse dictionary at \`${saeHook}\` (${sae.saeId}: TopK, ${sae.dSae} latents, k ${sae.k}, ${sae.tokens.train} tokens)`,
      `Held-out explained variance ${num(sae.eval.explainedVariance, 3)}, next-token loss ${num(sae.loss.clean, 3)} -> ${num(sae.loss.spliced, 3)} nats spliced in. Latents most selective per domain (mean in the domain minus the highest mean elsewhere):`,
      table(['domain', 'latent', 'mean', 'firing rate', 'selectivity'], search.results.flatMap((g) => g.latents.map((l) => [g.group, l.latent, l.mean, l.density, l.selectivity ?? 0]))),
    ].join('\n');
    return {
      slug: this.slug, title: this.title,
      question: 'Are there neurons that respond to unrelated domains (math and code), next to neurons selective to one domain, and do activations cluster by domain?',
      method: 'Neuron selectivity (mean activation and firing rate per domain, selectivity and cross-domain scores) over every expert neuron; last-token residual activations stored and searched by cosine similarity in SQL; a TopK sparse autoencoder on the MoE output of the polysemantic neuron\'s layer and its latents\' selectivity per domain.',
      parameters: { domains: Object.fromEntries(names.map((d) => [d, domains[d].length])), layer: poly.layer },
      body, plots: [plot],
      conclusion: `${poly.neuron} fires across domains (${names.map((d) => `${d} ${num(poly.means[d], 2)}`).join(', ')}), while ${names.map((d) => (sel.perDomain[d][0] ? `${sel.perDomain[d][0].neuron} is ${d}-selective` : `no neuron is ${d}-selective`)).join(', ')}. Of the 6 nearest stored activations to each domain's first prompt, these share its domain: ${neighbours.map((n) => `${n.domain} ${n.hits[n.domain]}/6`).join(', ')}. A sparse dictionary at ${saeHook} gives ${names.map((d) => `${d} latent ${bestLatent[d]?.latent} (selectivity ${num(bestLatent[d]?.selectivity ?? 0, 2)})`).join(', ')}.`,
      found: {
        polysemantic: poly.neuron, perDomain: Object.fromEntries(names.map((d) => [d, sel.perDomain[d].slice(0, 3).map((n) => n.neuron)])),
        dictionary: { saeId: sae.saeId, hook: saeHook, latentPerDomain: Object.fromEntries(names.map((d) => [d, bestLatent[d] ? { latent: bestLatent[d].latent, selectivity: bestLatent[d].selectivity ?? 0 } : null])) },
      },
      experimentIds: [sel.experimentId, ...neighbours.map((n) => n.experimentId)],
      runIds: cap.runIds.slice(0, 6),
      reproduce: [
        { what: 'Neurons active across domains', sql: `SELECT site, value AS cross_domain FROM results WHERE experiment_id = '${sel.experimentId}' AND (extra->>'list') = 'cross' ORDER BY value DESC LIMIT 5;`, expect: { site: sel.crossDomain.slice(0, 5).map((n) => n.neuron), cross_domain: sel.crossDomain.slice(0, 5).map((n) => n.cross) } },
        ...neighbours.map((n) => ({
          what: `The 6 nearest activations to the first ${n.domain} prompt`,
          sql: `SELECT runs.prompt, res.value AS cos FROM results res JOIN runs ON runs.run_id = split_part(res.site, ' ', 1) WHERE res.experiment_id = '${n.experimentId}' ORDER BY (res.extra->>'rank')::INTEGER;`,
          expect: { prompt: n.list.map((h) => h.prompt), cos: n.list.map((h) => h.cos) },
        })),
        { what: 'The sparse dictionary', sql: `SELECT sae_id, hook, d_sae FROM saes WHERE sae_id = '${sae.saeId}';`, expect: { sae_id: [sae.saeId], hook: [saeHook], d_sae: [sae.dSae] } },
      ],
    };
  },
};
