// Automatic circuit discovery by patching-based pruning (ACDC-style, simplified to node level).
//
// A candidate circuit C is scored by running the CLEAN prompts with every candidate component NOT
// in C patched to its value on the CORRUPTED prompts (heads: attn.hook_z; experts: their weighted
// output mlp.hook_expert_out; neurons: mlp.hook_post) and measuring
//     share(C) = (metric(C) - metric(corrupted)) / (metric(clean) - metric(corrupted)),
// so share(all candidates) = 1 and, when the prompts end on the same token, share(empty) = 0 (the
// token embeddings and anything outside the candidate set stay clean).
//
// Order: greedy PRUNING. Start from all candidates; each round scores the removal of every remaining
// component in one batched pass (one batch row per variant x example, per-row masks) and removes the
// least important: all "inert" ones (removal moves the share by less than inertTolerance) together
// with at least `fraction` of the remaining while many remain, one at a time once few remain
// (exactBelow). A bulk removal is checked at the start of the next round against the sum of the
// individual changes; if it misses by more than bulkTolerance it is undone and only the single least
// important component is removed. The reverse of the removal order ranks components by importance;
// the curve evaluates share vs size for the top-s components (s = 0..all) in one more batched pass,
// and the pruned circuit is the smallest prefix whose share reaches the threshold. Completion (see
// below) then adds what that prefix leaves out under redundancy and self-repair.
import { z } from 'zod';
import type { Intervention } from '../engine/intervention.ts';
import type { Tensor } from '../engine/tensor.ts';
import { checkCancelled, defineTool, ToolError, type ToolContext } from './define.ts';
import { answerList, meanMetric, metricAnswers, metricOf, metricOnRun, MetricName } from './metrics.ts';
import { alignPairs } from './patch.ts';
import { ExperimentId, PairRunIds } from './output.ts';
import { runAndRecord } from './runs.ts';
import { checkLayers, componentName, parseComponent, type Component, siteHook, siteList } from './sites.ts';

export const circuitInput = z.strictObject({
  clean: z.array(z.string().min(1)).min(1).max(64).describe('prompts where the behaviour happens, e.g. ["When Mary and John went to the store , John gave a drink to"]'),
  corrupted: z.array(z.string().min(1)).min(1).max(64).describe('token-aligned prompts where it does not (same token count as each clean prompt), e.g. with the repeated name replaced by a third name'),
  target: answerList.describe('the answer token on the clean prompts (one word, or one per example)'),
  distractor: answerList.optional().describe('the competing token for logit_diff (one word, or one per example)'),
  metric: MetricName.default('logit_diff'),
  threshold: z.number().min(0).max(1).default(0.8).describe('the circuit is the smallest top-ranked set whose recovered share (metric - corrupted) / (clean - corrupted) reaches this'),
  include: z.array(z.enum(['heads', 'experts'])).min(1).default(['heads', 'experts']).describe('component kinds to search over (ignored when components is given)'),
  layers: siteList(z.number().int(), 'layer').optional().describe('only candidates in these layers (default all)'),
  neurons: siteList(z.string(), 'neuron').optional().describe('extra neuron candidates, e.g. ["L1.E2.N7"] (patched on mlp.hook_post)'),
  components: siteList(z.string(), 'component').optional().describe('the exact candidate set instead of include/layers, e.g. ["L0.H7", "L1.H1", "L3.E5", "L2.E7.N8"]'),
  fraction: z.number().gt(0).max(0.5).default(0.25).describe('share of the remaining candidates pruned per round while more than exactBelow remain'),
  exactBelow: z.number().int().min(1).default(16).describe('once this few candidates remain, prune one per round'),
  inertTolerance: z.number().min(0).default(1e-3).describe('removals that change the share by less than this are pruned together'),
  bulkTolerance: z.number().min(0).default(0.05).describe('a bulk removal whose share misses the predicted one by more than this is undone'),
  complete: z.boolean().default(true).describe('after pruning, add the partners that take over a knocked-out member (redundant heads, backups): see completeTolerance'),
  completeTolerance: z.number().min(0).max(1).default(0.1).describe('completion adds an outside component that raises the circuit\'s share by more than this, and, for a member whose knockout costs the circuit more than it costs the full model by more than this, the outside component that best restores it (if it closes at least half of the gap)'),
  maxBatch: z.number().int().min(1).max(4096).default(128).describe('batch rows (variant x example) per forward'),
});
export type CircuitInput = z.infer<typeof circuitInput>;

export const circuitOutput = z.object({
  experimentId: ExperimentId,
  metric: MetricName,
  clean: z.number(),
  corrupted: z.number(),
  threshold: z.number(),
  circuit: z.array(z.string()).describe('the circuit: the pruned set plus what completion added, most important (pruning order) first'),
  size: z.number().int(),
  share: z.number().describe('recovered share (metric - corrupted) / (clean - corrupted) of the circuit'),
  candidates: z.number().int(),
  pruned: z.array(z.string()).describe('the smallest top-ranked set reaching the threshold, before completion'),
  completion: z.array(z.object({
    component: z.string().describe('the component added after pruning'),
    reason: z.enum(['contributes', 'takes_over']).describe('contributes: adding it to the circuit raises the share by more than completeTolerance; takes_over: it restores the circuit when member is knocked out'),
    member: z.string().nullable().describe('the member it takes over from (null for contributes)'),
    before: z.number().describe('share of the circuit (without member, for takes_over) before adding it'),
    after: z.number().describe('the same share with it added'),
    modelWithout: z.number().nullable().describe('share of the full model without member (null for contributes)'),
  })).describe('components added after pruning, in order'),
  curve: z.array(z.object({ size: z.number().int(), share: z.number(), added: z.string().nullable().describe('the component added at this size (null for size 0)') }))
    .describe('share vs size in importance order, sizes 0..candidates'),
  order: z.string(),
  rounds: z.number().int(),
  forwards: z.number().int(),
  rowsEvaluated: z.number().int(),
  runIds: PairRunIds,
});
export type CircuitResult = z.infer<typeof circuitOutput>;
type CircuitPoint = CircuitResult['curve'][number];

const hookOf = (c: Component) => siteHook(c.kind, c.layer);
const TOLERANCE = 1e-4;

function candidates(input: CircuitInput, ctx: ToolContext): Component[] {
  const cfg = ctx.session.config;
  let list: Component[];
  if (input.components) {
    list = input.components.map((s) => parseComponent(s, cfg));
  } else {
    const layers = input.layers ?? [...Array(cfg.numLayers).keys()];
    checkLayers(layers, cfg);
    list = [];
    for (const layer of [...new Set(layers)].sort((a, b) => a - b)) {
      if (input.include.includes('heads')) for (let h = 0; h < cfg.numHeads; h++) list.push({ kind: 'head', layer, head: h });
      if (input.include.includes('experts')) for (let e = 0; e < cfg.numExperts; e++) list.push({ kind: 'expert', layer, expert: e });
    }
    for (const s of input.neurons ?? []) list.push(parseComponent(s, cfg, 'neuron'));
  }
  const names = list.map(componentName);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new ToolError(`component ${dup} is listed twice`);
  if (list.length === 0) throw new ToolError('no candidate components; give include, layers or components');
  return list;
}

/** Rows of a [N, Tc, ...] tensor picked per batch row and cut or padded to T positions. */
function tileRows(t: Tensor, rows: number[], T: number): Tensor {
  const [, Tc, ...rest] = t.dims;
  const per = rest.reduce((a, b) => a * b, 1);
  const out = new Float32Array(rows.length * T * per);
  const keep = Math.min(T, Tc) * per;
  rows.forEach((ex, r) => out.set(t.data.subarray(ex * Tc * per, ex * Tc * per + keep), r * T * per));
  return { data: out, dims: [rows.length, T, ...rest] };
}

export const circuitTool = defineTool({
  name: 'find_circuit',
  description: 'Automatic circuit discovery over heads and experts (optionally neurons) by patching-based pruning: every candidate NOT in the circuit is patched from the corrupted run while the clean prompts run; greedy batched pruning removes the least important components first. Takes the smallest top-ranked set whose recovered share (metric - corrupted) / (clean - corrupted) reaches the threshold, then completes it: adds any component that still raises the share by more than completeTolerance, and any that takes over when a member is knocked out (a redundant partner, a backup). Returns the circuit, its share and size, what completion added and why, and the curve of share vs size over all candidates (stored as rows, experiment kind "circuit_discovery").',
  readsText: true,
  limits: { prompts: ['clean', 'corrupted'] },
  input: circuitInput,
  output: circuitOutput,
  async run(input, ctx): Promise<CircuitResult> {
    const cfg = ctx.session.config;
    const clean = ctx.session.encodeAll(input.clean, 'clean');
    const corrupted = ctx.session.encodeAll(input.corrupted, 'corrupted');
    alignPairs(clean, corrupted, false);
    const N = clean.length;
    const ans = metricAnswers(ctx, input, N);
    const comps = candidates(input, ctx);
    const n = comps.length;
    const names = comps.map(componentName);
    const hooks = [...new Set(comps.map(hookOf))];
    const V = cfg.vocabSize;

    // The clean run captures the same hooks so it takes the same numerical path as the patched runs.
    const cleanRun = await runAndRecord(ctx, clean, { capture: hooks }, { role: 'clean' });
    const corrRun = await runAndRecord(ctx, corrupted, { capture: hooks }, { role: 'corrupted' });
    const { spec, value: cleanValue } = metricOnRun(input.metric, ans, cleanRun.result.logits!.data, V, N);
    const corruptedValue = meanMetric(spec, corrRun.result.logits!.data, V, N);
    const denom = cleanValue - corruptedValue;
    if (Math.abs(denom) < 1e-6 * (1 + Math.abs(cleanValue) + Math.abs(corruptedValue))) {
      throw new ToolError(`clean and corrupted prompts give the same ${input.metric} (${cleanValue.toFixed(4)}); there is nothing to recover: choose a corruption that changes the answer`);
    }
    const share = (v: number) => (v - corruptedValue) / denom;

    // Where each candidate sits in its hook's mask (per batch row: [1, ...] without T).
    const slot = comps.map((c) => {
      if (c.kind === 'head') return { hook: hookOf(c), index: c.head, size: cfg.numHeads, dims: [1, cfg.numHeads, 1] };
      if (c.kind === 'expert') return { hook: hookOf(c), index: c.expert, size: cfg.numExperts, dims: [1, cfg.numExperts, 1] };
      return { hook: hookOf(c), index: c.expert * cfg.intermediateSize + c.neuron, size: cfg.numExperts * cfg.intermediateSize, dims: [1, cfg.numExperts, cfg.intermediateSize] };
    });
    const hookInfo = hooks.map((h) => slot.find((s) => s.hook === h)!);
    const perRowBytes = hooks.reduce((s, h) => s + corrRun.result.cache.get(h)!.data.length / N * 4, 0);
    const rowsPerForward = Math.max(1, Math.min(input.maxBatch, Math.floor(512e6 / Math.max(1, perRowBytes))));

    let forwards = 0;
    let rowsEvaluated = 0;
    let rounds = 0;
    /** Mean metric of each variant (a 0/1 membership per candidate), all examples. */
    const evaluate = async (variants: Uint8Array[], label: string): Promise<number[]> => {
      const rows: { v: number; ex: number }[] = [];
      variants.forEach((_, v) => { for (let ex = 0; ex < N; ex++) rows.push({ v, ex }); });
      const sums = new Float64Array(variants.length);
      for (let start = 0; start < rows.length; start += rowsPerForward) {
        checkCancelled(ctx, 'find_circuit');
        const chunk = rows.slice(start, start + rowsPerForward);
        const R = chunk.length;
        const T = Math.max(...chunk.map((r) => clean[r.ex].ids.length));
        const interventions: Intervention[] = hookInfo.map((h) => {
          const mask = new Float32Array(R * h.size);
          chunk.forEach((row, r) => {
            const inC = variants[row.v];
            for (let i = 0; i < n; i++) if (!inC[i] && slot[i].hook === h.hook) mask[r * h.size + slot[i].index] = 1;
          });
          return { hook: h.hook, mask: { data: mask, dims: [R, ...h.dims] }, value: tileRows(corrRun.result.cache.get(h.hook)!, chunk.map((r) => r.ex), T) };
        });
        const res = await ctx.session.model.run(chunk.map((r) => clean[r.ex].ids), { interventions, signal: ctx.signal });
        forwards++;
        rowsEvaluated += R;
        chunk.forEach((row, r) => {
          sums[row.v] += metricOf(spec, row.ex, res.logits!.data.subarray(r * V, (r + 1) * V));
        });
        ctx.onProgress?.({ done: Math.min(rows.length, start + R), total: rows.length, message: label });
      }
      return Array.from(sums, (s) => s / N);
    };

    // Pruning.
    /** share(all \\ {i}) for every candidate i: the first round scores exactly these */
    let modelWithout = new Map<number, number>();
    let inC = new Uint8Array(n).fill(1);
    let removal: number[] = [];
    let currentShare = 1;
    let pending: { inC: Uint8Array; removal: number[]; ranked: number[]; scores: Map<number, number>; predicted: number } | null = null;
    while (removal.length < n) {
      rounds++;
      const remaining = [...Array(n).keys()].filter((i) => inC[i]);
      const variants: Uint8Array[] = [];
      if (pending) variants.push(inC);
      for (const i of remaining) {
        const v = inC.slice();
        v[i] = 0;
        variants.push(v);
      }
      const values = (await evaluate(variants, `round ${rounds}: scoring ${remaining.length} remaining components`)).map(share);
      if (pending) {
        const actual = values.shift()!;
        if (Math.abs(actual - pending.predicted) > input.bulkTolerance) {
          // The bulk removal interacted: undo it and remove only the least important component.
          const first = pending.ranked[0];
          inC = pending.inC.slice();
          inC[first] = 0;
          removal = [...pending.removal, first];
          currentShare = pending.scores.get(first)!;
          pending = null;
          continue;
        }
        currentShare = actual;
      }
      const scores = new Map(remaining.map((i, j) => [i, values[j]]));
      if (rounds === 1) modelWithout = scores;
      // Least important first: highest share left after removal; ties to the later component.
      const ranked = [...remaining].sort((a, b) => scores.get(b)! - scores.get(a)! || b - a);
      let inert = 0;
      while (inert < ranked.length && Math.abs(scores.get(ranked[inert])! - currentShare) <= input.inertTolerance) inert++;
      const quota = remaining.length > input.exactBelow ? Math.max(1, Math.floor(input.fraction * remaining.length)) : 1;
      const take = Math.min(ranked.length, Math.max(quota, inert, 1));
      const removed = ranked.slice(0, take);
      const before = { inC: inC.slice(), removal: [...removal] };
      for (const i of removed) inC[i] = 0;
      removal.push(...removed);
      if (take === 1) {
        currentShare = scores.get(removed[0])!;
        pending = null;
      } else {
        const predicted = currentShare + removed.reduce((s, i) => s + (scores.get(i)! - currentShare), 0);
        pending = removal.length < n ? { ...before, ranked, scores, predicted } : null;
      }
    }

    // The curve: top-s components by importance, s = 0..n.
    const importance = [...removal].reverse();
    // Size n patches nothing: it is the clean run, share 1 by definition.
    const curveVariants = Array.from({ length: n }, (_, s) => {
      const v = new Uint8Array(n);
      for (const i of importance.slice(0, s)) v[i] = 1;
      return v;
    });
    const curveValues = [...await evaluate(curveVariants, 'curve of share vs size'), cleanValue];
    const curveShares = curveValues.map(share);
    let size = curveShares.findIndex((s) => s >= input.threshold - TOLERANCE);
    if (size < 0) size = n;
    const pruned = importance.slice(0, size);
    const curve: CircuitPoint[] = curveShares.map((s, k) => ({ size: k, share: s, added: k === 0 ? null : names[importance[k - 1]] }));

    // Completion. Pruning stops at the first top-ranked set that reaches the threshold, so it
    // leaves out (1) a component that still adds a clear share once the circuit runs (the share can
    // pass the threshold early when a component working against the behaviour, e.g. a negative name
    // mover, is patched away) and (2) one head of a redundant pair, or the component that takes over
    // when a member is gone, because that partner is not needed while the member runs. So, until
    // neither applies: (1) add the outside component c that raises share(C + c) over share(C) the
    // most, if by more than completeTolerance; (2) knock each member k out, and where the circuit
    // loses more (share(C) - share(C - k)) than the full model does (1 - share(all - k)) by more
    // than completeTolerance, add the outside component that best restores C - k, if it closes at
    // least half of that gap (else k's job is spread thin and k is left as it is; the IOI paper's
    // completeness test, one member at a time).
    const inCircuit = new Uint8Array(n);
    for (const i of pruned) inCircuit[i] = 1;
    const members = [...pruned];
    const completion: CircuitResult['completion'] = [];
    const settled = new Set<number>();
    const outside = () => [...Array(n).keys()].filter((i) => !inCircuit[i]);
    const add = (c: number, entry: Omit<CircuitResult['completion'][number], 'component'>) => {
      inCircuit[c] = 1;
      members.push(c);
      completion.push({ component: names[c], ...entry });
    };
    /** The best outside component to add to a variant of the circuit, and the share with it. */
    const bestAddition = async (base: Uint8Array, label: string) => {
      const out = outside();
      const values = (await evaluate([base, ...out.map((c) => { const v = base.slice(); v[c] = 1; return v; })], label)).map(share);
      const before = values.shift()!;
      const best = values.reduce((b, x, j) => (x > values[b] ? j : b), 0);
      return { c: out[best], before, after: values[best] };
    };
    while (input.complete && outside().length > 0) {
      const more = await bestAddition(inCircuit, 'completion: what else contributes');
      if (more.after - more.before > input.completeTolerance) {
        add(more.c, { reason: 'contributes', member: null, before: more.before, after: more.after, modelWithout: null });
        continue;
      }
      let added = false;
      for (;;) {
        const open = members.filter((k) => !settled.has(k));
        if (open.length === 0 || outside().length === 0) break;
        const knocked = (k: number) => { const v = inCircuit.slice(); v[k] = 0; return v; };
        const [now, ...circuitWithout] = (await evaluate([inCircuit, ...open.map(knocked)], 'completion: knocking out each member')).map(share);
        // what the circuit loses without k, beyond what the full model loses
        const worst = open.map((k, j) => ({ k, gap: (now - circuitWithout[j]) - (1 - modelWithout.get(k)!) })).sort((a, b) => b.gap - a.gap)[0];
        if (worst.gap <= input.completeTolerance) break;
        const over = await bestAddition(knocked(worst.k), `completion: what takes over from ${names[worst.k]}`);
        if (over.after - over.before < worst.gap / 2) {
          settled.add(worst.k);
          continue;
        }
        add(over.c, { reason: 'takes_over', member: names[worst.k], before: over.before, after: over.after, modelWithout: modelWithout.get(worst.k)! });
        added = true;
      }
      if (!added) break;
    }
    // most important (by the pruning order) first, like the curve
    const circuit = importance.filter((i) => inCircuit[i]).map((i) => names[i]);
    const circuitShare = completion.length ? share((await evaluate([inCircuit], 'the completed circuit'))[0]) : curveShares[size];

    const experimentId = await ctx.store.addExperiment({
      kind: 'circuit_discovery', modelId: ctx.session.modelId,
      params: { ...input, runIds: { clean: cleanRun.runIds, corrupted: corrRun.runIds } },
      metric: input.metric, cleanValue, corruptedValue,
      summary: { circuit, size: circuit.length, share: circuitShare, pruned: pruned.length, threshold: input.threshold, candidates: n, rounds, forwards },
    });
    await ctx.store.addResults(curve.map((p, k) => {
      const c = k === 0 ? null : comps[importance[k - 1]];
      return {
        experimentId, site: p.added ?? '(empty)', hook: c ? hookOf(c) : null, layer: c?.layer ?? null,
        component: c ? (c.kind === 'head' ? c.head : c.expert) : null, neuron: c?.kind === 'neuron' ? c.neuron : null,
        value: curveValues[k], effect: p.share, extra: { size: k, inCircuit: k > 0 && inCircuit[importance[k - 1]] === 1, kind: c?.kind ?? null },
      };
    }));
    return {
      experimentId, metric: input.metric, clean: cleanValue, corrupted: corruptedValue, threshold: input.threshold,
      circuit, size: circuit.length, share: circuitShare, candidates: n,
      pruned: pruned.map((i) => names[i]), completion,
      curve,
      order: 'pruning: least important removed first; the curve adds components in reverse removal order (most important first)',
      rounds, forwards, rowsEvaluated,
      runIds: { clean: cleanRun.runIds, corrupted: corrRun.runIds },
    };
  },
});
