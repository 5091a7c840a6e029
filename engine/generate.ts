// Greedy and sampled generation over a batch, with interventions and routing interventions active
// at every step (steering while generating). Each step recomputes the prefix: for the short
// contexts interpretability work uses this keeps interventions exact at every position, which a
// KV cache would not (cached keys would miss interventions whose shape depends on the length).
import type { Intervention, RoutingIntervention } from './intervention.ts';
import type { GptOssModel } from './model.ts';
import { EngineError } from './model.ts';
import { Rng } from './rng.ts';

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

export async function generate(model: GptOssModel, prompts: readonly (readonly number[])[], opts: GenerateOptions = {}): Promise<Generation[]> {
  const maxNew = opts.maxNewTokens ?? 32;
  const temperature = opts.temperature ?? 0;
  const topP = opts.topP ?? 1;
  if (!Number.isInteger(maxNew) || maxNew < 1 || maxNew > 4096) throw new EngineError(`maxNewTokens ${maxNew} is out of range; valid: 1..4096`);
  if (!(temperature >= 0)) throw new EngineError(`temperature ${temperature} must be >= 0`);
  if (!(topP > 0 && topP <= 1)) throw new EngineError(`topP ${topP} must be in (0, 1]`);
  const stop = new Set(opts.stopTokens ?? model.config.eosTokenIds);
  const rng = new Rng(opts.seed ?? 0);
  const rows = prompts.map((p) => [...p]);
  const out: Generation[] = prompts.map(() => ({ tokens: [], stoppedBy: 'length', logprobs: [] }));
  const done = prompts.map(() => false);
  const V = model.config.vocabSize;
  for (let step = 0; step < maxNew && done.some((d) => !d); step++) {
    const T = Math.max(...rows.map((r) => r.length));
    const ivs = typeof opts.interventions === 'function' ? opts.interventions(T) : (opts.interventions ?? []);
    const r = await model.run(rows, { interventions: ivs, routing: opts.routing, signal: opts.signal });
    const logits = r.logits!.data;
    for (let b = 0; b < rows.length; b++) {
      if (done[b]) continue;
      const row = logits.subarray(b * V, (b + 1) * V);
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
