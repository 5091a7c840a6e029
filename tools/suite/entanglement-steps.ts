// The steps of the standard entanglement experiment, written once: suite experiment 5 and the
// agent's entanglement protocol run these functions, each through its own ToolPort. Neuron
// selectivity over the domain prompt sets finds cross-domain (polysemantic) and single-domain
// neurons; the last-token residual activations at the polysemantic neuron's layer are stored and each
// domain's first prompt is searched for its nearest neighbours by cosine similarity.
import { blockHook } from '../../engine/hook-address.ts';
import type { StepResult, ToolPort } from './port.ts';

export type Selectivity = StepResult<'neuron_selectivity'>;
export type NeuronReport = Selectivity['crossDomain'][number];

export async function domainNeurons(port: ToolPort, domains: Record<string, string[]>): Promise<{ names: string[]; sel: Selectivity; poly: NeuronReport }> {
  const names = Object.keys(domains);
  const sel = await port.call(`neuron selectivity over ${names.join(', ')}`, 'neuron_selectivity', { domains, top: 5, topCross: 5 });
  const poly = sel.crossDomain[0];
  if (!poly) throw new Error('no neuron responds to more than one domain; nothing to report as entangled');
  return { names, sel, poly };
}

export interface Neighbours {
  from: string;
  domain: string;
  /** How many of the k nearest share each domain. */
  hits: Record<string, number>;
  experimentId: string;
  list: { prompt: string; domain: string; cos: number }[];
}

/** Last-token `hook_resid_post` at `layer` for every prompt, then the k nearest to each domain's first prompt (itself excluded). */
export async function domainNeighbours(port: ToolPort, domains: Record<string, string[]>, layer: number, k = 6): Promise<{ hook: string; runIds: string[]; neighbours: Neighbours[] }> {
  const names = Object.keys(domains);
  const hook = blockHook(layer, 'hook_resid_post');
  const all = names.flatMap((d) => domains[d].map((p) => ({ d, p })));
  const cap = await port.call(`activations at layer ${layer} (last token) for similarity search across domains`, 'capture_activations', { prompts: all.map((x) => x.p), hooks: [hook], positions: [-1] });
  const domainOf = new Map(cap.runIds.map((id, i) => [id, all[i].d]));
  const promptOf = new Map(cap.runIds.map((id, i) => [id, all[i].p]));
  const neighbours: Neighbours[] = [];
  for (const d of names) {
    const i = all.findIndex((x) => x.d === d);
    const r = await port.call(`the ${k} activations nearest to the first ${d} prompt`, 'similarity_search', { query: { runId: cap.runIds[i], hook, position: cap.tokens[i].length - 1 }, k, excludeSource: true, runIds: cap.runIds });
    const hits: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
    for (const h of r.hits) hits[domainOf.get(h.runId) ?? '?']++;
    neighbours.push({ from: all[i].p, domain: d, hits, experimentId: r.experimentId, list: r.hits.map((h) => ({ prompt: promptOf.get(h.runId) ?? h.runId, domain: domainOf.get(h.runId) ?? '?', cos: h.similarity })) });
  }
  return { hook, runIds: cap.runIds, neighbours };
}
