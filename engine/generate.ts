// Greedy and sampled generation over a batch, with interventions and routing interventions active
// at every step (steering while generating). With the KV cache the prompt runs once and each step
// computes one new token per row; without it each step recomputes the whole prefix, which keeps an
// intervention that is a function of the length exact at every position (see `kvCache`).
import { resolveHook } from './hooks.ts';
import type { Intervention, RoutingIntervention } from './intervention.ts';
import type { GptOssModel, KvCache } from './model.ts';
import { EngineError, selectKvRows } from './model.ts';
import { Rng } from './rng.ts';
import { takeAxis, type Tensor } from './tensor.ts';

export interface GenerateOptions {
  maxNewTokens?: number;
  /** 0 = greedy (default). */
  temperature?: number;
  topP?: number;
  seed?: number;
  stopTokens?: readonly number[];
  /** Fixed interventions (their position dim must broadcast, i.e. be 1) or built per padded length T. */
  interventions?: readonly Intervention[] | ((T: number) => Intervention[]);
  routing?: readonly RoutingIntervention[];
  /**
   * Reuse the keys and values of earlier positions (default 'auto': on, unless `interventions` is a
   * function). With the cache every position is computed once, when it is new, and rows are grouped
   * by prompt length (a cache holds no padding). Fixed interventions and routing (absolute
   * `positions`) give the same tokens as without it. A function of T is called with each group's
   * full length and only the last (new) positions of tensors whose position dim has that length are
   * used: earlier positions keep what they got when they were computed, as steering during
   * generation works in serving stacks. false: recompute the prefix at every step, so the function's
   * intervention at every position is what it returns for the current length.
   */
  kvCache?: 'auto' | boolean;
  signal?: AbortSignal;
  onStep?: (step: number, total: number) => void;
}

export interface Generation {
  /** New tokens only (including the stop token when one ended the row). */
  tokens: number[];
  stoppedBy: 'stop' | 'length';
  /** Log-probability of each generated token under the (intervened) model. */
  logprobs: number[];
}

/** One step's logits: the [V] row of each unfinished prompt. */
type StepLogits = (b: number) => Float32Array;

export async function generate(model: GptOssModel, prompts: readonly (readonly number[])[], opts: GenerateOptions = {}): Promise<Generation[]> {
  const maxNew = opts.maxNewTokens ?? 32;
  const temperature = opts.temperature ?? 0;
  const topP = opts.topP ?? 1;
  if (!Number.isInteger(maxNew) || maxNew < 1 || maxNew > 4096) throw new EngineError(`maxNewTokens ${maxNew} is out of range; valid: 1..4096`);
  if (!(temperature >= 0)) throw new EngineError(`temperature ${temperature} must be >= 0`);
  if (!(topP > 0 && topP <= 1)) throw new EngineError(`topP ${topP} must be in (0, 1]`);
  const kvCache = opts.kvCache ?? 'auto';
  if (kvCache !== 'auto' && typeof kvCache !== 'boolean') throw new EngineError(`kvCache must be 'auto', true or false, got ${String(kvCache)}`);
  // 'auto' recomputes for a function: it may move its intervention as the text grows (tools/steer.ts
  // steers "the last token"), which only recomputing keeps exact. Fixed interventions cannot depend
  // on the length, so for them the cache gives the same result. No length heuristic: one group per
  // prompt length only loses on short runs with many lengths (bench/generate.ts: 0.94x at 16+8
  // tokens, 4 lengths, hidden 1024) and wins 3-7x at 64+64.
  const useCache = kvCache === true || (kvCache === 'auto' && typeof opts.interventions !== 'function');
  const stop = new Set(opts.stopTokens ?? model.config.eosTokenIds);
  const rng = new Rng(opts.seed ?? 0);
  const rows = prompts.map((p) => [...p]);
  const out: Generation[] = prompts.map(() => ({ tokens: [], stoppedBy: 'length', logprobs: [] }));
  const done = prompts.map(() => false);
  const V = model.config.vocabSize;
  const recompute = async (): Promise<StepLogits> => {
    const T = Math.max(...rows.map((r) => r.length));
    const ivs = typeof opts.interventions === 'function' ? opts.interventions(T) : (opts.interventions ?? []);
    const r = await model.run(rows, { interventions: ivs, routing: opts.routing, signal: opts.signal });
    return (b) => r.logits!.data.subarray(b * V, (b + 1) * V);
  };
  const next = useCache ? cachedSteps(model, rows, done, opts) : recompute;
  for (let step = 0; step < maxNew && done.some((d) => !d); step++) {
    const logits = await next(step < maxNew - 1);
    // Rows in input order, so the rng draws are the same with and without the cache.
    for (let b = 0; b < rows.length; b++) {
      if (done[b]) continue;
      const row = logits(b);
      const { id, logprob } = temperature === 0 ? argmax(row) : sample(row, temperature, topP, rng);
      rows[b].push(id);
      out[b].tokens.push(id);
      out[b].logprobs.push(logprob);
      if (stop.has(id)) {
        done[b] = true;
        out[b].stoppedBy = 'stop';
      }
    }
    opts.onStep?.(step + 1, maxNew);
  }
  return out;
}

/**
 * Cached stepping: rows grouped by prompt length, each group with its own KV cache. The first call
 * runs each group's prompt; later calls run each group's newest token. Finished rows leave their group.
 */
function cachedSteps(model: GptOssModel, rows: number[][], done: boolean[], opts: GenerateOptions): (more: boolean) => Promise<StepLogits> {
  const B = rows.length;
  const V = model.config.vocabSize;
  for (const r of opts.routing ?? []) {
    for (const b of r.rows ?? []) if (!Number.isInteger(b) || b < 0 || b >= B) throw new EngineError(`routing row ${b} is out of range; valid: 0..${B - 1}`);
  }
  const byLength = new Map<number, number[]>();
  rows.forEach((r, b) => byLength.set(r.length, [...(byLength.get(r.length) ?? []), b]));
  const groups: { rows: number[]; kv: KvCache | null }[] = [...byLength.values()].map((g) => ({ rows: g, kv: null }));
  return async (more) => {
    const logits = new Map<number, Float32Array>();
    for (const g of groups) {
      const live = g.rows.flatMap((b, i) => (done[b] ? [] : [i]));
      if (live.length === 0) continue;
      if (live.length < g.rows.length) {
        if (g.kv) g.kv = selectKvRows(g.kv, live);
        g.rows = live.map((i) => g.rows[i]);
      }
      const total = rows[g.rows[0]].length;
      const P = g.kv?.length ?? 0;
      const ivs = typeof opts.interventions === 'function'
        ? groupInterventions(model, opts.interventions(total), B, g.rows, total - P, total)
        : groupInterventions(model, opts.interventions ?? [], B, g.rows, total - P, null);
      const r = await model.run(g.rows.map((b) => rows[b].slice(P)), {
        past: g.kv ?? undefined, returnKv: more, interventions: ivs, routing: groupRouting(opts.routing ?? [], g.rows, total), signal: opts.signal,
      });
      g.kv = r.kv ?? null;
      g.rows.forEach((b, i) => logits.set(b, r.logits!.data.subarray(i * V, (i + 1) * V)));
    }
    return (b) => logits.get(b)!;
  };
}

/**
 * Interventions narrowed to one group: parts with a batch dim of B keep the group's rows; with
 * `total` set (a function's output), position dims of that length keep their last T positions.
 */
function groupInterventions(model: GptOssModel, ivs: readonly Intervention[], B: number, rows: number[], T: number, total: number | null): Intervention[] {
  return ivs.map((iv) => {
    const axes = resolveHook(iv.hook, model.config.numLayers).spec.axes;
    // The query position axis; the key axis of attention scores/pattern spans past + new positions.
    const posAxis = axes.indexOf('pos');
    const fit = (t: Tensor | undefined): Tensor | undefined => {
      if (!t) return t;
      let x = t;
      const lead = axes.length - x.dims.length;
      if (lead === 0 && x.dims[0] !== 1 && rows.length !== B) {
        if (x.dims[0] !== B) throw new EngineError(`intervention on "${iv.hook}" has batch dim ${x.dims[0]}; give 1 or one per prompt (${B})`);
        x = takeAxis(x, 0, rows);
      }
      const ax = posAxis - lead;
      if (total !== null && posAxis >= 0 && ax >= 0 && x.dims[ax] === total && T < total) {
        x = takeAxis(x, ax, Array.from({ length: T }, (_, i) => total - T + i));
      }
      return x;
    };
    return { hook: iv.hook, mask: fit(iv.mask), value: fit(iv.value), add: fit(iv.add) };
  });
}

/** Routing rules for one group: rows renumbered within it, positions not yet reached left out. */
function groupRouting(rules: readonly RoutingIntervention[], rows: number[], total: number): RoutingIntervention[] {
  return rules.flatMap((r) => {
    const out = { ...r };
    if (r.rows) {
      out.rows = r.rows.map((b) => rows.indexOf(b)).filter((i) => i >= 0);
      if (out.rows.length === 0) return [];
    }
    // Positions are absolute; one beyond this group's length applies when a later step reaches it.
    if (r.positions) out.positions = r.positions.filter((p) => p < total);
    return [out];
  });
}

function logSumExp(x: ArrayLike<number>, scale = 1): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) max = Math.max(max, x[i] * scale);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i] * scale - max);
  return max + Math.log(s);
}

function argmax(x: Float32Array): { id: number; logprob: number } {
  let id = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[id]) id = i;
  return { id, logprob: x[id] - logSumExp(x) };
}

/** Temperature then nucleus (top-p) sampling, deterministic for a seed. */
function sample(x: Float32Array, temperature: number, topP: number, rng: Rng): { id: number; logprob: number } {
  const lse = logSumExp(x, 1 / temperature);
  const probs = Array.from(x, (v, i) => ({ i, p: Math.exp(v / temperature - lse) }));
  probs.sort((a, b) => b.p - a.p || a.i - b.i);
  let cum = 0;
  let cut = probs.length;
  for (let j = 0; j < probs.length; j++) {
    cum += probs[j].p;
    if (cum >= topP) { cut = j + 1; break; }
  }
  const kept = probs.slice(0, cut);
  const total = kept.reduce((s, q) => s + q.p, 0);
  let u = rng.next() * total;
  for (const q of kept) {
    u -= q.p;
    if (u <= 0) return { id: q.i, logprob: Math.log(q.p / total) };
  }
  const last = kept[kept.length - 1];
  return { id: last.i, logprob: Math.log(last.p / total) };
}
