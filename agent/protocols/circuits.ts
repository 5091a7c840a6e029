// Built-in protocols for the two attention circuits: IOI (Wang et al. 2022) and induction. Patching
// shows what is sufficient to restore the behaviour, path patching which earlier heads feed the
// carriers, ablation (against control heads of no patching effect) what is necessary.
import { byLength, ioiPatchingSet } from '../../tools/prompt-sets.ts';
import { inductionPatchingSet } from '../../tools/suite/prompts.ts';
import { ablation, carriers, controls, mdTable, num, pct, type ProtocolEnv, type ProtocolReport, type Recorder } from './common.ts';

const layerOf = (site: string) => Number(/^L(\d+)/.exec(site)?.[1] ?? NaN);

export async function ioiProtocol(env: ProtocolEnv, rec: Recorder): Promise<ProtocolReport> {
  const ioi = byLength(env.prompts.ioi)[0].slice(0, 8);
  const abc = ioiPatchingSet(ioi, 'abc');
  const swap = ioiPatchingSet(ioi, 'io_swap');
  const partial: Partial<ProtocolReport> = {};
  const sections: string[] = [];
  sections.push(`${ioi.length} IOI prompts of one template length, e.g. "${ioi[0].prompt}" -> **${ioi[0].target}** (not ${ioi[0].distractor}). Metric: logit(IO) - logit(S) at the last token, averaged over the prompts.`);

  const resid = await rec.experiment('IOI: residual stream patching, layer x position (ABC corruption)', 'patch_activations', { ...abc, site: 'resid_pre' },
    (d) => `clean ${num(d.clean)}, corrupted ${num(d.corrupted)}`);
  const residRows = await rec.results(resid.experimentId!, { order: 'effect DESC' });
  const clean = Number(resid.data.clean);
  const corrupted = Number(resid.data.corrupted);
  const words = ioi[0].prompt.split(/\s+/);
  sections.push('', '### Baseline and residual stream', mdTable(['run', 'mean logit difference'], [['clean', clean], ['corrupted: second subject mention replaced by a fresh name (ABC)', corrupted]]), '',
    `Restoring the clean residual stream (\`blocks.L.hook_resid_pre\`) at one position (experiment \`${resid.experimentId}\`), strongest cells:`, '',
    mdTable(['layer', 'position', 'token', 'effect'], residRows.slice(0, 6).map((r) => [r.layer, r.position, r.position === null ? null : words[r.position] ?? null, r.effect])));

  const headsSwap = await rec.experiment('IOI: head patching, indirect object swapped for a fresh name', 'patch_activations', { ...swap, site: 'head' },
    (d) => `clean ${num(d.clean)}, corrupted ${num(d.corrupted)}`);
  const swapRows = await rec.results(headsSwap.experimentId!);
  const nameMovers = carriers(swapRows);
  partial.found = { nameMovers };
  const effectOf = (site: string) => swapRows.find((r) => r.site === site)?.effect ?? NaN;
  sections.push('', '### Head patching', `Each head's \`attn.hook_z\` restored at every position. With the indirect object swapped (experiment \`${headsSwap.experimentId}\`) only heads that carry the answer's identity differ between the runs:`, '',
    mdTable(['head', 'effect (IO swapped)'], swapRows.slice(0, 6).map((r) => [r.site, r.effect])), '',
    `Name-mover candidates (effect at least a quarter of the strongest head's, and at least 0.1): **${nameMovers.join(', ')}**.`);

  const headsAbc = await rec.experiment('IOI: head patching, ABC corruption', 'patch_activations', { ...abc, site: 'head' }, (d) => `clean ${num(d.clean)}, corrupted ${num(d.corrupted)}`);
  const abcRows = await rec.results(headsAbc.experimentId!);
  sections.push('', `With the subject's duplicate removed (ABC, experiment \`${headsAbc.experimentId}\`) the heads that detect and signal the duplicate matter too:`, '',
    mdTable(['head', 'effect (ABC)'], abcRows.slice(0, 6).map((r) => [r.site, r.effect])));

  let sInhibition: string | null = null;
  let pathTop: { site: string; effect: number }[] = [];
  const firstMover = Math.min(...nameMovers.map(layerOf));
  if (firstMover > 0) {
    const path = await rec.experiment('IOI: path patching from earlier heads into the name movers\' queries', 'path_patch', { ...abc, receivers: nameMovers, receiverInput: 'q' });
    // Result sites read "L2.H2 -> L3.H1:q": the sender is the part before the arrow.
    pathTop = (await rec.results(path.experimentId!)).filter((r) => Number.isFinite(r.effect)).map((r) => ({ ...r, site: r.site.split(' -> ')[0] }));
    sInhibition = pathTop[0] && pathTop[0].effect > 0.1 ? pathTop[0].site : null;
    partial.found = { ...partial.found, sInhibition };
    sections.push('', '### Path patching into the name movers', `Senders: every head before layer ${firstMover}; receivers: ${nameMovers.join(', ')} (query input); all other heads frozen (experiment \`${path.experimentId}\`).`, '',
      mdTable(['sender head', 'effect through the name movers\' queries'], pathTop.slice(0, 6).map((r) => [r.site, r.effect])));
  }

  const moversAbl = await ablation(rec, 'IOI: mean-ablating the name movers (necessity)', { prompts: abc.clean, target: abc.target, distractor: abc.distractor, components: nameMovers, method: 'mean' });
  const ctrl = controls(swapRows, nameMovers, nameMovers.length, nameMovers.map(layerOf));
  const ctrlAbl = await ablation(rec, 'IOI: mean-ablating control heads (no patching effect, same layers where possible)', { prompts: abc.clean, target: abc.target, distractor: abc.distractor, components: ctrl, method: 'mean' });
  sections.push('', '### Ablation (necessity) against a control', mdTable(['mean-ablated', 'logit difference before', 'after', 'drop', 'experiment'], [
    [nameMovers.join(', '), moversAbl.before, moversAbl.after, pct(moversAbl.relativeDrop), moversAbl.experimentId],
    [`control: ${ctrl.join(', ')}`, ctrlAbl.before, ctrlAbl.after, pct(ctrlAbl.relativeDrop), ctrlAbl.experimentId],
  ]));

  const one = nameMovers.length === 1;
  const moverEffects = one ? num(effectOf(nameMovers[0])) : nameMovers.map((h) => `${h} ${num(effectOf(h))}`).join(', ');
  const necessary = moversAbl.relativeDrop > 0.5 && moversAbl.relativeDrop > 3 * Math.max(0.01, ctrlAbl.relativeDrop);
  const conclusion = [
    `The model does IOI on these prompts (clean logit difference ${num(clean)}, ${num(corrupted)} with the ABC corruption).`,
    `Name mover head${nameMovers.length > 1 ? 's' : ''} **${nameMovers.join(', ')}**: patching ${nameMovers.length > 1 ? 'each' : 'it'} from the clean run restores ${moverEffects} of the logit difference when the indirect object is swapped (\`${headsSwap.experimentId}\`);`,
    `mean-ablating ${nameMovers.length > 1 ? 'them' : 'it'} drops the logit difference by ${pct(moversAbl.relativeDrop)} (\`${moversAbl.experimentId}\`) against ${pct(ctrlAbl.relativeDrop)} for as many control heads (\`${ctrlAbl.experimentId}\`)${necessary ? `, so ${one ? 'it is' : 'they are'} necessary as well as sufficient` : ', so necessity is not established'}.`,
    sInhibition ? `The signal that tells the name movers which name to avoid reaches their queries mainly from **${sInhibition}** (path patching effect ${num(pathTop[0]?.effect)}, next ${pathTop[1] ? `${pathTop[1].site} ${num(pathTop[1].effect)}` : '–'}): the S-inhibition candidate.` : 'No earlier head stands out in path patching into the name movers\' queries.',
  ].join(' ');

  return {
    phenomenon: 'ioi',
    title: 'IOI: name movers and the heads that steer them',
    question: 'Which components carry indirect-object identification, and are they necessary?',
    hypothesis: 'IOI is carried by a few late "name mover" heads that copy the indirect object to the answer position; earlier heads that detect the repeated subject steer them through their queries (S-inhibition), as in Wang et al. (2022).',
    method: 'Activation patching (clean activations restored into corrupted runs; effect = (patched - corrupted) / (clean - corrupted)) over residual positions and heads with two minimal corruptions; path patching (freeze-and-patch) into the name movers\' queries; mean ablation of the candidates against an equal number of control heads with no patching effect.',
    body: sections.join('\n'),
    conclusion,
    caveats: [
      `${ioi.length} prompts of one template; other templates and orders (ABBA vs BABA) may use the circuit differently.`,
      'Head patching restores a head at every position; which position matters was not isolated.',
      'Path patching ranks senders by the direct path into the queries only.',
    ],
    found: { nameMovers, sInhibition, nameMoverEffects: Object.fromEntries(nameMovers.map((h) => [h, effectOf(h)])), ablationDrop: moversAbl.relativeDrop, controlDrop: ctrlAbl.relativeDrop },
    experiments: rec.experiments,
    sql: rec.sql,
  };
}

export async function inductionProtocol(env: ProtocolEnv, rec: Recorder): Promise<ProtocolReport> {
  const ind = env.prompts.induction.slice(0, 8);
  const set = inductionPatchingSet(ind);
  const sections: string[] = [`${ind.length} repeated random sequences, e.g. "${ind[0].prompt}" -> **${ind[0].target}**; corrupted: the first half reversed, so every token is followed by a different one than in the repeat. Metric: logit(next token) - logit(previous token).`];

  const heads = await rec.experiment('Induction: head patching', 'patch_activations', { ...set, site: 'head' }, (d) => `clean ${num(d.clean)}, corrupted ${num(d.corrupted)}`);
  const rows = await rec.results(heads.experimentId!);
  const circuit = carriers(rows, 0.3);
  const top = circuit[0];
  sections.push('', '### Head patching', mdTable(['run', 'mean logit difference'], [['clean', Number(heads.data.clean)], ['corrupted', Number(heads.data.corrupted)]]), '',
    mdTable(['head', 'effect'], rows.slice(0, 6).map((r) => [r.site, r.effect])), '', `Carriers (effect at least 0.3 of the strongest): **${circuit.join(', ')}** (experiment \`${heads.experimentId}\`).`);

  // The induction head's key must hold "the token before me", written by an earlier head. Path
  // patching cannot show it with this corruption (the values carry the corrupted tokens too), so
  // ask which earlier head the behaviour needs: mean-ablate each alone.
  let prevToken: string | null = null;
  if (layerOf(top) > 0) {
    const earlier = rows.filter((r) => r.layer !== null && r.layer < layerOf(top)).map((r) => r.site).sort();
    const sweep = await rec.experiment(`Induction: mean-ablating each head before layer ${layerOf(top)} alone`, 'ablate', { prompts: set.clean, target: set.target, distractor: set.distractor, components: earlier, method: 'mean', each: true },
      (d) => `baseline ${num(d.before)}`);
    const each = (await rec.results(sweep.experimentId!)).filter((r) => !r.site.includes('+'));
    prevToken = each[0] && each[0].effect > 0.3 ? each[0].site : null;
    sections.push('', `### Which earlier heads it needs`, `Each head before layer ${layerOf(top)} mean-ablated alone (experiment \`${sweep.experimentId}\`); effect = relative drop of the logit difference.`, '',
      mdTable(['head', 'logit difference after', 'relative drop'], each.slice(0, 6).map((r) => [r.site, r.value, pct(r.effect)])));
  }

  const abl = await ablation(rec, 'Induction: mean-ablating the strongest head', { prompts: set.clean, target: set.target, distractor: set.distractor, components: [top], method: 'mean' });
  const ctrl = controls(rows, circuit, 1, [layerOf(top)]);
  const ctrlAbl = await ablation(rec, 'Induction: mean-ablating a control head', { prompts: set.clean, target: set.target, distractor: set.distractor, components: ctrl, method: 'mean' });
  sections.push('', '### Ablation against a control', mdTable(['mean-ablated', 'before', 'after', 'drop', 'experiment'], [
    [top, abl.before, abl.after, pct(abl.relativeDrop), abl.experimentId], [`control: ${ctrl.join(', ')}`, ctrlAbl.before, ctrlAbl.after, pct(ctrlAbl.relativeDrop), ctrlAbl.experimentId],
  ]));

  return {
    phenomenon: 'induction',
    title: 'Induction: the induction head and its previous-token head',
    question: 'Which heads predict the continuation of a repeated sequence?',
    hypothesis: 'An induction head attends from each token to the token after its earlier copy and copies it; its key is built by a previous-token head in an earlier layer (Olsson et al. 2022).',
    method: 'Head patching with a token-aligned corruption (first half reversed); mean ablation of each earlier head alone (which heads the behaviour needs); mean ablation of the strongest head against a control head.',
    body: sections.join('\n'),
    conclusion: `Induction runs through **${circuit.join(', ')}**: patching ${top} restores ${num(rows[0]?.effect)} of the logit difference (\`${heads.experimentId}\`), and mean-ablating it drops the logit difference by ${pct(abl.relativeDrop)} against ${pct(ctrlAbl.relativeDrop)} for a control head.${prevToken ? ` Of the earlier heads it needs **${prevToken}** most (mean-ablating it alone removes most of the behaviour): the previous-token head candidate.` : ''}`,
    caveats: [`${ind.length} random letter sequences; natural-text induction was not tested.`],
    found: { inductionHeads: circuit, previousToken: prevToken, ablationDrop: abl.relativeDrop, controlDrop: ctrlAbl.relativeDrop },
    experiments: rec.experiments,
    sql: rec.sql,
  };
}
