// Built-in protocols for the two attention circuits: IOI (Wang et al. 2022) and induction. Patching
// shows what is sufficient to restore the behaviour, path patching which earlier heads feed the
// carriers, ablation (against control heads of no patching effect) what is necessary.
import { ioiPatchingSet, type TaskExample } from '../../tools/prompt-sets.ts';
import { agreementSection } from '../../tools/suite/agreement.ts';
import { gridCells, headOf, inductionHeads, ioiAbcHeads, ioiCircuit, ioiExamples, ioiNameMovers, ioiSInhibition, layerOf, ranked } from '../../tools/suite/steps.ts';
import { ablation, controls, mdTable, num, pct, roleScores, strongHeads, topHeads, type ProtocolEnv, type ProtocolReport, type Recorder } from './common.ts';
const uniq = <T>(xs: T[]): T[] => [...new Set(xs)];
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

interface LastTokenAttention {
  head: string;
  /** Mean attention from the last token over the prompts where the position was found. */
  io: number;
  s1: number;
  s2: number;
  other: number;
  sink: number;
  /** The key most often attended most ("IO", "S1", "S2" or the token) and on how many of the prompts. */
  mostAttended: string;
  mostAttendedIn: number;
  prompts: number;
}

const KEY_NAMES: Record<string, string> = { IO: 'the indirect object', S1: 'the first subject mention', S2: 'the second subject mention' };

// Word-level tokens match the names exactly; BPE tokens carry a leading space.
const norm = (t: string) => t.replace(/^[\sĠ▁]+/, '').trim();

/**
 * Where the watched heads attend from the last token of IOI prompts: one attention_patterns call with
 * `query: -1`, which lists each head's keys by weight (all of them for prompts up to 64 tokens),
 * read at the IO and S positions.
 */
async function lastTokenAttention(rec: Recorder, examples: TaskExample[], watched: string[]): Promise<{ rows: LastTokenAttention[]; experimentIds: string[]; unread: number }> {
  const layers = uniq(watched.map(layerOf)).sort((a, b) => a - b);
  const heads = uniq(watched.map(headOf)).sort((a, b) => a - b);
  const acc = new Map(watched.map((h) => [h, { io: [] as number[], s1: [] as number[], s2: [] as number[], other: [] as number[], sink: [] as number[], top: [] as string[] }]));
  const r = await rec.experiment(`IOI: attention from the last token of ${examples.length} prompts`, 'attention_patterns',
    { prompts: examples.map((e) => e.prompt), layers, heads, maxPatternHeads: layers.length * heads.length, query: -1, queryKeys: 64, top: 1 },
    (d) => `${(d.queryRows ?? []).length} prompts read`);
  type Key = { position: number; token: string; weight: number };
  const queryRows = (Array.isArray(r.data.queryRows) ? r.data.queryRows : []) as { prompt: number; position: number; heads: { head: string; sink: number; top: Key[] }[] }[];
  let unread = examples.length - queryRows.length;
  for (const q of queryRows) {
    const e = examples[q.prompt];
    for (const h of q.heads) {
      const a = acc.get(h.head);
      const top = h.top;
      if (!a) continue;
      // Every key up to the query is listed only when the prompt has at most 64 tokens.
      if (top.length !== q.position + 1) {
        unread++;
        continue;
      }
      const toks: string[] = [];
      const w: number[] = [];
      for (const k of top) {
        toks[k.position] = norm(k.token);
        w[k.position] = k.weight;
      }
      const io = toks.indexOf(e.target);
      const s1 = toks.indexOf(e.distractor);
      const s2 = toks.lastIndexOf(e.distractor);
      if (io >= 0) a.io.push(w[io]);
      if (s1 >= 0) a.s1.push(w[s1]);
      if (s2 > s1) a.s2.push(w[s2]);
      a.other.push(w.reduce((x, y, k) => x + (k === io || k === s1 || (k === s2 && s2 > s1) ? 0 : y), 0));
      a.sink.push(Number(h.sink));
      const k = top[0].position;
      a.top.push(k === io ? 'IO' : k === s1 ? 'S1' : k === s2 ? 'S2' : toks[k]);
    }
  }
  const rows = watched.map((head) => {
    const a = acc.get(head)!;
    const counts = [...uniq(a.top)].map((l) => [l, a.top.filter((x) => x === l).length] as const).sort((x, y) => y[1] - x[1]);
    return { head, io: mean(a.io), s1: mean(a.s1), s2: mean(a.s2), other: mean(a.other), sink: mean(a.sink), mostAttended: counts[0]?.[0] ?? '–', mostAttendedIn: counts[0]?.[1] ?? 0, prompts: a.top.length };
  });
  return { rows, experimentIds: r.experimentId ? [r.experimentId] : [], unread };
}

export async function ioiProtocol(env: ProtocolEnv, rec: Recorder): Promise<ProtocolReport> {
  // The head sweeps, path patching and circuit discovery are the suite's own steps (tools/suite/steps.ts).
  const port = rec.port();
  const ioi = ioiExamples(env.prompts.ioi);
  const abc = ioiPatchingSet(ioi, 'abc');
  const partial: Partial<ProtocolReport> = {};
  const sections: string[] = [];
  sections.push(`${ioi.length} IOI prompts of one template length, e.g. "${ioi[0].prompt}" -> **${ioi[0].target}** (not ${ioi[0].distractor}). Metric: logit(IO) - logit(S) at the last token, averaged over the prompts.`);

  const resid = await rec.experiment('IOI: residual stream patching, layer x position (ABC corruption)', 'patch_activations', { ...abc, site: 'resid_pre' },
    (d) => `clean ${num(d.clean)}, corrupted ${num(d.corrupted)}`);
  const residRows = await rec.results(resid.experimentId!, { order: 'effect DESC' });
  const { clean, corrupted } = resid.data;
  // The model's tokens of the first clean prompt (BPE may split a word), from the run the sweep stored.
  const cleanRun = resid.data.runIds.clean[0];
  const tokenRows = cleanRun ? await rec.query(`SELECT unnest(tokens) AS token, generate_subscripts(tokens, 1) - 1 AS position FROM runs WHERE run_id = '${cleanRun}' ORDER BY position`, { cite: false }) : [];
  const words = tokenRows.map((r) => String(r.token).trim());
  sections.push('', '### Baseline and residual stream', mdTable(['run', 'mean logit difference'], [['clean', clean], ['corrupted: second subject mention replaced by a fresh name (ABC)', corrupted]]), '',
    `Restoring the clean residual stream (\`blocks.L.hook_resid_pre\`) at one position (experiment \`${resid.experimentId}\`), strongest cells:`, '',
    mdTable(['layer', 'position', 'token', 'effect'], residRows.slice(0, 6).map((r) => [r.layer, r.position, r.position === null ? null : words[r.position] ?? null, r.effect])));

  const { swap, cells: swapCells, nameMovers } = await ioiNameMovers(port, ioi);
  const headsSwap = swap.patch;
  const swapRows = ranked(swapCells).map((c) => ({ ...c, layer: layerOf(c.site) }));
  partial.found = { nameMovers };
  const effectOf = (site: string) => swapRows.find((r) => r.site === site)?.effect ?? NaN;
  sections.push('', '### Head patching', `Each head's \`attn.hook_z\` restored at every position. With the indirect object swapped (experiment \`${headsSwap.experimentId}\`) only heads that carry the answer's identity differ between the runs:`, '',
    mdTable(['head', 'effect (IO swapped)'], swapRows.slice(0, 6).map((r) => [r.site, r.effect])), '',
    `Name-mover candidates (effect at least a quarter of the strongest head's, and at least 0.1): **${nameMovers.join(', ')}**.`);

  const abcHeads = await ioiAbcHeads(port, ioi);
  const headsAbc = abcHeads.patch;
  sections.push('', `With the subject's duplicate removed (ABC, experiment \`${headsAbc.experimentId}\`) the heads that detect and signal the duplicate matter too:`, '',
    mdTable(['head', 'effect (ABC)'], ranked(gridCells(headsAbc.grid)).slice(0, 6).map((r) => [r.site, r.effect])));
  sections.push('', '### Attribution patching first', agreementSection([{ what: 'IO swapped', r: swap }, { what: 'ABC', r: abcHeads }]));

  const { receivers, path, senders: pathTop, sInhibition } = await ioiSInhibition(port, ioi, nameMovers);
  if (path) {
    partial.found = { ...partial.found, sInhibition };
    sections.push('', '### Path patching into the name movers', `Senders: every head before layer ${Math.min(...receivers.map(layerOf))}; receivers: ${receivers.join(', ')} (query input); all other heads frozen (experiment \`${path.experimentId}\`).`, '',
      mdTable(['sender head', 'effect through the name movers\' queries'], pathTop.slice(0, 6).map((r) => [r.site, r.effect])));
  }

  // Attention: which heads have the classic roles on these prompts, and where the candidates look
  // from the last token (a name mover should attend to the indirect object).
  const nHeads = swapRows.length;
  const attn = await rec.experiment('IOI: attention patterns and head roles on the clean prompts', 'attention_patterns', { prompts: abc.clean, maxPatternHeads: 0, top: 5 },
    (d) => `${d.heads} heads scored`);
  const roles = await roleScores(rec, attn.experimentId!);
  const previousTokenHeads = strongHeads(roles.get('previous_token')).map((t) => t.head);
  // The only repeated name is the subject: attending to its earlier copy (duplicate-token) or to the
  // token after it (induction-style) both detect the duplicate, as in Wang et al.
  const duplicateTokenHeads = uniq([...strongHeads(roles.get('duplicate_token')), ...strongHeads(roles.get('induction'))].sort((a, b) => b.score - a.score).map((t) => t.head));
  const watched = [...nameMovers, ...(sInhibition && !nameMovers.includes(sInhibition) ? [sInhibition] : [])];
  const look = watched.length ? await lastTokenAttention(rec, ioi, watched) : { rows: [], experimentIds: [], unread: 0 };
  const lookOf = (h: string) => look.rows.find((r) => r.head === h);
  const moverLook = nameMovers.map((h) => lookOf(h)!).filter((r) => r.prompts > 0);
  const moversAttendToIO = moverLook.length === nameMovers.length && moverLook.every((r) => r.io > r.s1 + (Number.isFinite(r.s2) ? r.s2 : 0));
  const roleRow = (role: string, label: string) => [label, roles.get(role)?.baseline ?? null, topHeads(roles.get(role)), strongHeads(roles.get(role)).map((t) => t.head).join(', ') || 'none'];
  sections.push('', '### Attention patterns',
    `Role scores over the ${abc.clean.length} clean prompts (experiment \`${attn.experimentId}\`; mean attention of each query to the previous token / to earlier copies of its token / to the token right after an earlier copy; baseline = mean over all ${nHeads} heads). A head has the role when its score is at least 0.5 and above the baseline.`, '',
    mdTable(['role', 'baseline', 'top heads (score)', 'heads with the role'], [
      roleRow('previous_token', 'previous token'), roleRow('duplicate_token', 'duplicate token (earlier copy)'), roleRow('induction', 'induction-style duplicate (token after the earlier copy)'),
    ]), '',
    `Duplicate-detector candidates (duplicate-token or induction-style score at least 0.5): **${duplicateTokenHeads.join(', ') || 'none'}**; previous-token candidates: **${previousTokenHeads.join(', ') || 'none'}**.`, '',
    `Attention from the last token of the ${ioi.length} prompts (\`attention_patterns\` with \`query: -1\`, experiment ${look.experimentIds.map((x) => `\`${x}\``).join(', ')}), mean over the prompts; IO = the indirect object, S1/S2 = the first/second subject mention, other = every other token, sink = the attention sink.`, '',
    mdTable(['head', 'candidate for', 'IO', 'S1', 'S2', 'other tokens', 'sink', 'most attended (prompts)'], look.rows.map((r) => [
      r.head, nameMovers.includes(r.head) ? 'name mover' : 'S-inhibition', r.io, r.s1, r.s2, r.other, r.sink, r.prompts ? `${r.mostAttended} (${r.mostAttendedIn}/${r.prompts})` : '–',
    ])),
    ...(look.unread ? ['', `${look.unread} head x prompt row(s) could not be read (prompts longer than the 64 keys listed per head).`] : []));

  const moversAbl = await ablation(rec, 'IOI: mean-ablating the name movers (necessity)', { prompts: abc.clean, target: abc.target, distractor: abc.distractor, components: nameMovers, method: 'mean' });
  const ctrl = controls(swapRows, nameMovers, nameMovers.length, nameMovers.map(layerOf));
  const ctrlAbl = await ablation(rec, 'IOI: mean-ablating control heads (no patching effect, same layers where possible)', { prompts: abc.clean, target: abc.target, distractor: abc.distractor, components: ctrl, method: 'mean' });
  sections.push('', '### Ablation (necessity) against a control', mdTable(['mean-ablated', 'logit difference before', 'after', 'drop', 'experiment'], [
    [nameMovers.join(', '), moversAbl.before, moversAbl.after, pct(moversAbl.relativeDrop), moversAbl.experimentId],
    [`control: ${ctrl.join(', ')}`, ctrlAbl.before, ctrlAbl.after, pct(ctrlAbl.relativeDrop), ctrlAbl.experimentId],
  ]));

  // Discovery without the hypothesis: the suite's pruning step over every head, both names replaced.
  const { result: fc, prompts: circuitPrompts } = await ioiCircuit(port, ioi, nHeads);
  const curve = fc.curve.slice(1).map((p) => ({ site: p.added ?? '', effect: p.share }));
  const circuitSize = fc.size;
  const circuitShare = fc.share;
  const circuit = fc.circuit;
  const circuitContainsNameMovers = nameMovers.every((h) => circuit.includes(h));
  const others: [string, string][] = [
    ...(sInhibition ? [[sInhibition, 'the S-inhibition candidate'] as [string, string]] : []),
    ...duplicateTokenHeads.map((h): [string, string] => [h, 'the duplicate detector']),
    ...previousTokenHeads.map((h): [string, string] => [h, 'the previous-token head']),
  ].filter(([h], i, a) => !nameMovers.includes(h) && a.findIndex(([x]) => x === h) === i);
  const alsoIn = others.filter(([h]) => circuit.includes(h)).map(([h, what]) => `${what} ${h}`);
  const inCircuit = (h: string) => (circuit.includes(h) ? 'yes' : 'no');
  sections.push('', '### The circuit found by pruning',
    `\`find_circuit\` over all ${fc.candidates} heads (experiment \`${fc.experimentId}\`; both names replaced in the corrupted run, ${circuitPrompts} of the ${ioi.length} prompts; clean ${num(fc.clean)}, corrupted ${num(fc.corrupted)}): every head outside the set is patched from the corrupted run; heads are ranked by greedy pruning and the circuit is the smallest top-ranked set keeping 80% of the logit difference. Share recovered as heads are added, most important first:`, '',
    mdTable(['heads kept', 'head added', 'share of the clean logit difference', 'in the circuit'], curve.slice(0, Math.min(curve.length, circuitSize + 3)).map((r, i) => [i + 1, r.site, r.effect, i < circuitSize ? 'yes' : 'no'])), '',
    `Circuit: **${circuit.join(', ')}** (${circuitSize} heads, ${pct(circuitShare)} recovered).`, '',
    mdTable(['candidate from the experiments above', 'head', 'in the circuit'], [
      ...nameMovers.map((h) => ['name mover (head patching)', h, inCircuit(h)]),
      ...(sInhibition ? [['S-inhibition (path patching)', sInhibition, inCircuit(sInhibition)]] : []),
      ...duplicateTokenHeads.map((h) => ['duplicate detector (attention)', h, inCircuit(h)]),
      ...previousTokenHeads.map((h) => ['previous token (attention)', h, inCircuit(h)]),
    ]));

  const one = nameMovers.length === 1;
  const moverEffects = one ? num(effectOf(nameMovers[0])) : nameMovers.map((h) => `${h} ${num(effectOf(h))}`).join(', ');
  const necessary = moversAbl.relativeDrop > 0.5 && moversAbl.relativeDrop > 3 * Math.max(0.01, ctrlAbl.relativeDrop);
  const conclusion = [
    `The model does IOI on these prompts (clean logit difference ${num(clean)}, ${num(corrupted)} with the ABC corruption).`,
    `Name mover head${nameMovers.length > 1 ? 's' : ''} **${nameMovers.join(', ')}**: patching ${nameMovers.length > 1 ? 'each' : 'it'} from the clean run restores ${moverEffects} of the logit difference when the indirect object is swapped (\`${headsSwap.experimentId}\`);`,
    `mean-ablating ${nameMovers.length > 1 ? 'them' : 'it'} drops the logit difference by ${pct(moversAbl.relativeDrop)} (\`${moversAbl.experimentId}\`) against ${pct(ctrlAbl.relativeDrop)} for as many control heads (\`${ctrlAbl.experimentId}\`)${necessary ? `, so ${one ? 'it is' : 'they are'} necessary as well as sufficient` : ', so necessity is not established'}.`,
    sInhibition ? `The signal that tells the name movers which name to avoid reaches their queries mainly from **${sInhibition}** (path patching effect ${num(pathTop[0]?.effect)}, next ${pathTop[1] ? `${pathTop[1].site} ${num(pathTop[1].effect)}` : '–'}): the S-inhibition candidate.` : 'No earlier head stands out in path patching into the name movers\' queries.',
    moverLook.length
      ? `Attention patterns agree${moversAttendToIO ? '' : ' only in part'}: from the last token ${one ? `${moverLook[0].head} puts` : `the name movers put`} ${moverLook.map((r) => pct(r.io)).join(', ')} of ${one ? 'its' : 'their'} attention on the indirect object and ${moverLook.map((r) => pct(r.s1 + (Number.isFinite(r.s2) ? r.s2 : 0))).join(', ')} on the subject (mean over ${ioi.length} prompts)${sInhibition && lookOf(sInhibition)?.prompts ? `, while ${sInhibition} attends mostly to ${KEY_NAMES[lookOf(sInhibition)!.mostAttended] ?? `"${lookOf(sInhibition)!.mostAttended}"`} (${lookOf(sInhibition)!.mostAttendedIn} of ${lookOf(sInhibition)!.prompts} prompts)` : ''}.`
      : 'The last-token attention of the candidates could not be read.',
    duplicateTokenHeads.length
      ? `By attention role scores **${duplicateTokenHeads.join(', ')}** ${duplicateTokenHeads.length > 1 ? 'are' : 'is'} the duplicate detector candidate${duplicateTokenHeads.length > 1 ? 's' : ''} (attends from the repeated subject to its earlier copy or to the token after it)${previousTokenHeads.length ? `, and ${previousTokenHeads.join(', ')} attend${previousTokenHeads.length > 1 ? '' : 's'} to the previous token` : ''}.`
      : 'No head scores at least 0.5 as a duplicate-token or induction-style duplicate detector on these prompts.',
    `Circuit discovery without these hypotheses (\`find_circuit\` over all ${fc.candidates} heads, both names replaced) keeps ${pct(circuitShare)} of the logit difference with ${circuitSize} head${circuitSize === 1 ? '' : 's'}, **${circuit.join(', ')}**, which ${circuitContainsNameMovers ? 'contains' : 'does not contain'} the name mover${one ? '' : 's'}${alsoIn.length ? `, ${alsoIn.join(' and ')}` : ''} (\`${fc.experimentId}\`).`,
  ].join(' ');

  return {
    phenomenon: 'ioi',
    title: 'IOI: name movers and the heads that steer them',
    question: 'Which components carry indirect-object identification, and are they necessary?',
    hypothesis: 'IOI is carried by a few late "name mover" heads that copy the indirect object to the answer position; earlier heads that detect the repeated subject steer them through their queries (S-inhibition), as in Wang et al. (2022).',
    method: 'Attribution patching over every head first (one forward and one backward), confirmed by activation patching (clean activations restored into corrupted runs; effect = (patched - corrupted) / (clean - corrupted)) over residual positions and heads with two minimal corruptions; path patching (freeze-and-patch) into the name movers\' queries; mean ablation of the candidates against an equal number of control heads with no patching effect; attention patterns (role scores over the clean prompts, and where the candidates attend from the last token); patching-based circuit discovery over all heads (find_circuit, smallest set keeping 80% of the logit difference with both names replaced).',
    body: sections.join('\n'),
    conclusion,
    caveats: [
      `${ioi.length} prompts of one length; other templates and orders (ABBA vs BABA) may use the circuit differently.`,
      'Head patching restores a head at every position; which position matters was not isolated.',
      'Path patching ranks senders by the direct path into the queries only.',
      `Circuit discovery searched attention heads only (no experts or neurons)${circuitPrompts < ioi.length ? ` on ${circuitPrompts} of the ${ioi.length} prompts, to bound its cost (each pruning round scores every remaining head on every prompt)` : ''}. It is relative to replacing both names (the suite's corruption for the circuit), so heads that act before the second subject mention (previous-token heads at the first one) count too; with the ABC corruption they would not.`,
    ],
    found: {
      atpAgreement: { ioSwap: swap.agreement, abc: abcHeads.agreement },
      nameMovers, sInhibition, nameMoverEffects: Object.fromEntries(nameMovers.map((h) => [h, effectOf(h)])), ablationDrop: moversAbl.relativeDrop, controlDrop: ctrlAbl.relativeDrop,
      previousTokenHeads, duplicateTokenHeads, lastTokenAttention: look.rows, moversAttendToIO,
      circuit, circuitShare, circuitSize, circuitCandidates: fc.candidates, circuitPrompts, circuitContainsNameMovers,
    },
    experiments: rec.experiments,
    sql: rec.sql,
  };
}

export async function inductionProtocol(env: ProtocolEnv, rec: Recorder): Promise<ProtocolReport> {
  const ind = env.prompts.induction.slice(0, 8);
  const sections: string[] = [`${ind.length} repeated random sequences, e.g. "${ind[0].prompt}" -> **${ind[0].target}**; corrupted: the first half reversed, so every token is followed by a different one than in the repeat. Metric: logit(next token) - logit(previous token).`];

  // Head patching (AtP first) is the suite's step (tools/suite/steps.ts).
  const induction = await inductionHeads(rec.port(), ind);
  const { set, circuit } = induction;
  const heads = induction.heads.patch;
  const rows = ranked(induction.cells).map((c) => ({ ...c, layer: layerOf(c.site) }));
  const top = circuit[0];
  sections.push('', '### Head patching', mdTable(['run', 'mean logit difference'], [['clean', heads.clean], ['corrupted', heads.corrupted]]), '',
    mdTable(['head', 'effect'], rows.slice(0, 6).map((r) => [r.site, r.effect])), '', `Carriers (effect at least 0.3 of the strongest): **${circuit.join(', ')}** (experiment \`${heads.experimentId}\`).`,
    '', '### Attribution patching first', agreementSection([{ what: 'induction heads', r: induction.heads }]));

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

  // Attention patterns as an independent check: the induction head should score highest on
  // "attends to the token after an earlier copy", the head it needs on "attends to the previous token".
  const attn = await rec.experiment('Induction: attention patterns and head roles on the repeated sequences', 'attention_patterns',
    { prompts: set.clean, maxPatternHeads: 0, top: 5, head: top, matrixTokens: 16 }, (d) => `${d.heads} heads scored`);
  const roles = await roleScores(rec, attn.experimentId!);
  const inductionTop = roles.get('induction')?.top[0] ?? null;
  const prevScores = roles.get('previous_token');
  const prevTop = prevScores?.top[0] ?? null;
  const previousTokenHeads = strongHeads(prevScores).map((t) => t.head);
  const inductionAgrees = inductionTop?.head === top;
  const previousTokenAgrees = prevToken ? previousTokenHeads.includes(prevToken) : null;
  const heatmap = Array.isArray(attn.data.matrix?.heatmap) ? (attn.data.matrix.heatmap as string[]) : [];
  const roleRow = (role: string, label: string) => [label, roles.get(role)?.baseline ?? null, topHeads(roles.get(role), 4), strongHeads(roles.get(role)).map((t) => t.head).join(', ') || 'none'];
  sections.push('', '### Attention patterns',
    `Role scores over the ${set.clean.length} repeated sequences (experiment \`${attn.experimentId}\`): induction = mean attention from a token in the repeat to the token right after its earlier copy; previous token = mean attention to the token before; baseline = mean over all heads. A head has the role when its score is at least 0.5 and above the baseline.`, '',
    mdTable(['role', 'baseline', 'top heads (score)', 'heads with the role'], [roleRow('induction', 'induction'), roleRow('previous_token', 'previous token')]), '',
    mdTable(['check', 'attention patterns', 'patching / ablation', 'agree'], [
      ['induction head', inductionTop ? `${inductionTop.head} (${num(inductionTop.score)})` : '–', `${top} (head patching)`, inductionAgrees ? 'yes' : 'no'],
      ['previous-token head', previousTokenHeads.join(', ') || 'none', prevToken ? `${prevToken} (ablation)` : 'none found', previousTokenAgrees === null ? '–' : previousTokenAgrees ? 'yes' : 'no'],
    ]),
    ...(heatmap.length ? ['', `${top}'s pattern on the first sequence (rows: queries, columns: keys, darker = more attention; " .:-=+*#%@" from 0 to 1):`, '', '```', ...heatmap, '```'] : []));

  const attentionConclusion = [
    inductionTop ? ` Attention patterns ${inductionAgrees ? 'agree' : 'disagree'}: the highest induction score is ${inductionTop.head}'s (${num(inductionTop.score)}, baseline ${num(roles.get('induction')?.baseline)})${inductionAgrees ? ', the head patching found' : `, not ${top}'s`}.` : '',
    previousTokenHeads.length
      ? ` ${previousTokenHeads.length > 1 ? `${previousTokenHeads.length} heads attend to the previous token` : `${previousTokenHeads[0]} attends to the previous token`} (${previousTokenHeads.map((h) => `${h} ${num(prevScores!.top.find((t) => t.head === h)!.score)}`).join(', ')})${prevToken ? (previousTokenAgrees ? `; ${previousTokenHeads.length > 1 ? `attention alone cannot tell which one the induction head reads, ablation singles out **${prevToken}**` : `it is the head ablation found`}` : `; the head ablation found, ${prevToken}, is not among them`) : ''}.`
      : ' No head scores at least 0.5 on attending to the previous token.',
  ].join('');

  return {
    phenomenon: 'induction',
    title: 'Induction: the induction head and its previous-token head',
    question: 'Which heads predict the continuation of a repeated sequence?',
    hypothesis: 'An induction head attends from each token to the token after its earlier copy and copies it; its key is built by a previous-token head in an earlier layer (Olsson et al. 2022).',
    method: 'Head patching with a token-aligned corruption (first half reversed); mean ablation of each earlier head alone (which heads the behaviour needs); mean ablation of the strongest head against a control head; attention role scores (induction, previous token) over the repeated sequences, compared with the heads patching and ablation found.',
    body: sections.join('\n'),
    conclusion: `Induction runs through **${circuit.join(', ')}**: patching ${top} restores ${num(rows[0]?.effect)} of the logit difference (\`${heads.experimentId}\`), and mean-ablating it drops the logit difference by ${pct(abl.relativeDrop)} against ${pct(ctrlAbl.relativeDrop)} for a control head.${prevToken ? ` Of the earlier heads it needs **${prevToken}** most (mean-ablating it alone removes most of the behaviour): the previous-token head candidate.` : ''}${attentionConclusion}`,
    caveats: [
      `${ind.length} random letter sequences; natural-text induction was not tested.`,
      'Attention role scores show where heads look, not what they write; patching and ablation carry the causal claims.',
    ],
    found: {
      atpAgreement: induction.heads.agreement,
      inductionHeads: circuit, previousToken: prevToken, ablationDrop: abl.relativeDrop, controlDrop: ctrlAbl.relativeDrop,
      inductionByPattern: inductionTop?.head ?? null, inductionScore: inductionTop?.score ?? null,
      previousTokenByPattern: prevTop?.head ?? null, previousTokenScore: prevTop?.score ?? null, previousTokenHeads,
      patternsAgree: { inductionHead: inductionAgrees, previousToken: previousTokenAgrees },
    },
    experiments: rec.experiments,
    sql: rec.sql,
  };
}
