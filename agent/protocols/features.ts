// Built-in protocols for features carried by experts, directions and neurons: the successor expert,
// sentiment steering, and cross-domain entanglement.
import { blockHook, parseSiteAddress } from '../../engine/hook-address.ts';
import { byLength } from '../../tools/prompt-sets.ts';
import { domainNeighbours, domainNeurons } from '../../tools/suite/entanglement-steps.ts';
import { sentimentSteering } from '../../tools/suite/steering-steps.ts';
import { ablation, mdTable, num, pct, type ProtocolEnv, type ProtocolReport, type Recorder, type SqlScalar } from './common.ts';

export interface Arch {
  layers: number;
  heads: number;
  experts: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

const inList = (ids: string[]) => ids.map((id) => `'${id}'`).join(', ');

export async function successorProtocol(env: ProtocolEnv, rec: Recorder, arch: Arch): Promise<ProtocolReport> {
  const ex = byLength(env.prompts.successor)[0].slice(0, 8);
  const base = { prompts: ex.map((e) => e.prompt), target: ex.map((e) => e.target), distractor: ex.map((e) => e.distractor) };
  const sections = [`${ex.length} counting prompts, e.g. "${ex[0].prompt}" -> **${ex[0].target}**. Metric: logit(next number) - logit(last number).`];
  const all = Array.from({ length: arch.layers * arch.experts }, (_, i) => `L${Math.floor(i / arch.experts)}.E${i % arch.experts}`);

  const sweep = await rec.experiment('Successor: zero-ablating each expert alone', 'ablate', { ...base, components: all, method: 'zero', each: true }, (d) => `baseline ${num(d.before)}`);
  const before = Number(sweep.data.before);
  const rows = (await rec.results(sweep.experimentId!)).filter((r) => r.site !== all.join('+') && !r.site.includes('+'));
  const top = rows[0];
  const others = rows.slice(1).map((r) => r.effect);
  sections.push('', '### Which expert', `Each expert's output zeroed alone (experiment \`${sweep.experimentId}\`); effect = relative drop of the logit difference from ${num(before)}.`, '',
    mdTable(['expert', 'logit difference after', 'relative drop'], rows.slice(0, 6).map((r) => [r.site, r.value, pct(r.effect)])), '',
    `Median drop over the other ${others.length} experts (the control): ${pct(median(others))}.`);

  const routing = await ablation(rec, `Successor: forbidding the router to choose ${top.site}`, { ...base, components: [top.site], method: 'zero', expertMode: 'routing' });
  sections.push('', '### Routing', `With ${top.site} forbidden in routing (its tokens go to their next choice): ${num(routing.before)} -> ${num(routing.after)} (${pct(routing.relativeDrop)} drop, \`${routing.experimentId}\`).`);

  const address = parseSiteAddress(top.site);
  if (address?.kind !== 'expert') throw new Error(`ablate returned ${top.site} where an expert address (L<l>.E<e>) was expected`);
  const { layer, expert } = address;
  const postHook = blockHook(layer, 'mlp.hook_post');
  const cap = await rec.experiment(`Successor: ${top.site}'s neurons at the last number`, 'capture_activations', { prompts: base.prompts, hooks: [postHook], positions: [-1], components: [expert] });
  const neurons = await rec.query(
    `SELECT r.prompt, list_position(a.vec, list_max(a.vec)) - 1 AS top_neuron, list_max(a.vec) AS activation FROM activations a JOIN runs r USING (run_id) WHERE a.run_id IN (${inList(cap.runIds)}) AND a.hook = '${postHook}' AND a.component = ${expert} ORDER BY r.prompt`,
  );
  sections.push('', '### Neurons', `Most active neuron of ${top.site} at the last token of each prompt (runs captured with \`capture_activations\`):`, '',
    mdTable(['prompt', 'top neuron', 'activation'], neurons.map((r) => [r.prompt, `L${layer}.E${expert}.N${r.top_neuron}`, Number(r.activation)])));
  const distinct = new Set(neurons.map((r) => r.top_neuron)).size;

  return {
    phenomenon: 'successor',
    title: `Successor: expert ${top.site} computes n + 1`,
    question: 'Which expert (and which of its neurons) maps a number to the next one?',
    hypothesis: 'The router sends number tokens to one expert whose neurons each map a number n to n + 1.',
    method: 'Zero ablation of every expert alone (the others are the control); routing ablation of the strongest; neuron activations of that expert at the last number, captured and queried with SQL.',
    body: sections.join('\n'),
    conclusion: `Expert **${top.site}** carries the successor behaviour: zeroing it drops the logit difference by ${pct(top.effect)} (\`${sweep.experimentId}\`) against a median of ${pct(median(others))} for the other experts; forbidding the router to choose it drops it by ${pct(routing.relativeDrop)}. At the last number ${distinct} different neuron(s) of it are the most active across ${neurons.length} prompts${distinct > 1 ? ', consistent with one neuron per number' : ''}.`,
    caveats: ['Zero ablation of an expert output is a strong intervention; mean ablation was not run.', 'Neuron roles are read from activations, not tested by ablating single neurons.'],
    found: { successorExpert: top.site, drop: top.effect, medianOtherDrop: median(others), routingDrop: routing.relativeDrop, topNeurons: neurons.map((r) => `L${layer}.E${expert}.N${r.top_neuron}`) },
    experiments: rec.experiments,
    sql: rec.sql,
  };
}

export async function sentimentProtocol(env: ProtocolEnv, rec: Recorder, arch: Arch): Promise<ProtocolReport> {
  // The steps are the suite's experiment 3 (tools/suite/steering-steps.ts), called over MCP.
  const st = await sentimentSteering(rec.port(), env.prompts, arch.layers);
  const { prompts: neg, perLayer, best, coefficients, top, sweep, at, shiftAll, shiftLast, controlShift, flipped } = st;
  const sections = [`Steered prompts: ${neg.length} negative contexts, e.g. "${neg[0].prompt}"; metric: logit(positive continuation) - logit(negative continuation). Contrast vector: mean \`resid_pre\` over ${env.prompts.contrast.positive.length} positive minus ${env.prompts.contrast.negative.length} negative contexts.`];
  sections.push('', '### Which layer', mdTable(['layer', 'shift (coefficient 1, every token)', 'experiment'], perLayer.map((x) => [x.layer, x.shift, x.experimentId])));
  sections.push('', `### Coefficient sweep at layer ${best.layer}`, mdTable(['coefficient', 'last token', 'last 3 tokens', 'every token'], coefficients.map((c) => [c, at('last', c).metric, at('window', c).metric, at('all', c).metric])));
  const gens = sweep.generations;
  if (gens.length) {
    const keys = Object.keys(gens[0].steered);
    sections.push('', 'Greedy generations:', '', mdTable(['prompt', 'unsteered', ...keys], gens.map((g) => [g.prompt, g.unsteered, ...keys.map((k) => g.steered[k])])));
  }
  sections.push('', '### Control', `A contrast vector built the same way from shuffled labels moves the metric by ${num(controlShift)} at coefficient ${top} on every token (experiment \`${st.control.experimentId}\`), against ${num(shiftAll)} for the sentiment contrast.`);

  return {
    phenomenon: 'sentiment',
    title: 'Sentiment steering: one token vs every token',
    question: 'Does a sentiment direction steer the model, at which layer, and does steering every token beat steering one?',
    hypothesis: 'Sentiment is a direction in the residual stream that a later head averages over the context; adding it at every token moves the answer much more than at the last token alone.',
    method: 'Contrast vector (positive minus negative contexts) added to the residual stream entering each layer; the best layer swept over coefficients at the last token, the last 3 tokens and every token; a shuffled-label contrast as control (the suite\'s experiment 3, same steps).',
    body: sections.join('\n'),
    conclusion: `Steering works best entering layer ${best.layer} (shift ${num(best.shift)} at coefficient 1). At coefficient ${top}, every-token steering shifts the logit difference by ${num(shiftAll)} against ${num(shiftLast)} for the last token alone (\`${sweep.experimentId}\`)${flipped ? ', and flips the answer from negative to positive' : ''}; a shuffled-label control vector shifts it by ${num(controlShift)} (\`${st.control.experimentId}\`).`,
    caveats: [`${neg.length} negative prompts; steering towards negative was not measured.`, 'The layer was chosen on the same prompts the sweep reports (no held-out set).'],
    found: { layer: best.layer, shiftAll, shiftLast, controlShift, flipped },
    experiments: rec.experiments,
    sql: rec.sql,
  };
}


export async function entanglementProtocol(env: ProtocolEnv, rec: Recorder): Promise<ProtocolReport> {
  // The steps are the suite's experiment 5 (tools/suite/entanglement-steps.ts), called over MCP.
  const domains = env.prompts.domains;
  const port = rec.port();
  const { names, sel, poly } = await domainNeurons(port, domains);
  const { hook, neighbours } = await domainNeighbours(port, domains, poly.layer);
  const [a, b] = names.includes('math') && names.includes('code') ? ['math', 'code'] : [names[0], names[1]];
  const sections = [`Prompts: ${names.map((d) => `${domains[d].length} ${d}`).join(', ')} (e.g. ${names.map((d) => `${d}: "${domains[d][0]}"`).join('; ')}). Every neuron's (\`mlp.hook_post\`) mean activation per domain over all tokens, counting tokens not routed to its expert as 0 (experiment \`${sel.experimentId}\`).`];
  if (sel.warning) sections.push('', `Note from neuron_selectivity: ${sel.warning}`);
  sections.push('', '### Neurons active across domains', mdTable(['neuron', ...names.map((d) => `mean on ${d}`), 'cross-domain score'], sel.crossDomain.map((n) => [n.neuron, ...names.map((d) => n.means[d]), n.cross])),
    '', '### Neurons selective to one domain', mdTable(['domain', 'neuron', ...names.map((d) => `mean on ${d}`), 'selectivity'], names.flatMap((d) => sel.perDomain[d].slice(0, 3).map((n) => [d, n.neuron, ...names.map((x) => n.means[x]), n.selectivity]))),
    '', `### Similarity search at \`${hook}\` (last token, cosine)`, mdTable(['query prompt', 'its domain', ...names.map((d) => `${d} among ${neighbours[0]?.list.length ?? 0} nearest`)], neighbours.map((n) => [n.from, n.domain, ...names.map((d) => n.hits[d])])));
  rec.sql.push(`SELECT site, value AS cross_domain FROM results WHERE experiment_id = '${sel.experimentId}' AND (extra->>'list') = 'cross' ORDER BY value DESC`);
  const inBoth = poly.means[a] > 0 && poly.means[b] > 0;
  return {
    phenomenon: 'entanglement',
    title: `Cross-domain entanglement: neurons shared by ${a} and ${b}`,
    question: `Which neurons respond to both ${a} and ${b}, and which to one domain only?`,
    hypothesis: `Some MLP neurons are polysemantic across domains (active on ${a} and on ${b} tokens but not on other text), beside neurons selective for one domain.`,
    method: 'Neuron selectivity (mean activation and firing rate per domain, selectivity and cross-domain scores) over every expert neuron; last-token residual activations at the polysemantic neuron\'s layer stored and searched by cosine similarity (the suite\'s experiment 5, same steps).',
    body: sections.join('\n'),
    conclusion: `**${poly.neuron}** is the clearest cross-domain neuron: mean activation ${names.map((n) => `${n} ${num(poly.means[n])}`).join(', ')}${inBoth ? '' : ` (not active in both ${a} and ${b})`}. ${names.map((d) => (sel.perDomain[d][0] ? `${sel.perDomain[d][0].neuron} is ${d}-selective` : `no neuron is ${d}-selective`)).join(', ')}. Of the nearest stored activations to each domain's first prompt, these share its domain: ${neighbours.map((n) => `${n.domain} ${n.hits[n.domain]}/${n.list.length}`).join(', ')}.`,
    caveats: ['Activation is not causation: ablating these neurons was not part of this protocol.', 'Means over few prompts; tokens shared by domains (digits, punctuation) can drive a neuron in both (neuron_selectivity reports them).'],
    found: { polysemantic: poly.neuron, perDomain: Object.fromEntries(names.map((d) => [d, sel.perDomain[d].slice(0, 3).map((n) => n.neuron)])), domains: [a, b] },
    experiments: rec.experiments,
    sql: rec.sql,
  };
}
