// Metrics on last-position logits, and the normalised patching effect.
import { z } from 'zod';
import { ToolError, type ToolContext } from './define.ts';

export const MetricName = z.enum(['logit_diff', 'prob', 'logprob', 'loss', 'kl']).describe(
  'logit_diff: logit(target) - logit(distractor); prob / logprob: of the target; loss: cross-entropy of the target (-logprob, lower is better); kl: KL(clean || run) over the vocabulary (needs no target)',
);
export type MetricName = z.infer<typeof MetricName>;

export interface MetricSpec {
  name: MetricName;
  /** Per example: target and distractor token ids (distractor only for logit_diff). */
  targets: number[];
  distractors: number[];
  /** Clean last-position logits per example (for kl). */
  cleanLogits?: Float32Array[];
}

function logSoftmax(x: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i] - max);
  const lse = max + Math.log(s);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] - lse;
  return out;
}

/** The metric of one example's last-position logits. */
export function metricOf(spec: MetricSpec, example: number, logits: Float32Array): number {
  switch (spec.name) {
    case 'logit_diff':
      return logits[spec.targets[example]] - logits[spec.distractors[example]];
    case 'prob':
      return Math.exp(logSoftmax(logits)[spec.targets[example]]);
    case 'logprob':
      return logSoftmax(logits)[spec.targets[example]];
    case 'loss':
      return -logSoftmax(logits)[spec.targets[example]];
    case 'kl': {
      if (!spec.cleanLogits) throw new ToolError('kl needs the clean run');
      const p = logSoftmax(spec.cleanLogits[example]);
      const q = logSoftmax(logits);
      let kl = 0;
      for (let i = 0; i < p.length; i++) kl += Math.exp(p[i]) * (p[i] - q[i]);
      return kl;
    }
  }
}

/** Mean metric over the examples of a [N, 1, V] (or [N, V]) logits block. */
export function meanMetric(spec: MetricSpec, logits: Float32Array, V: number, examples: number, offset = 0): number {
  let s = 0;
  for (let n = 0; n < examples; n++) s += metricOf(spec, n, logits.subarray((offset + n) * V, (offset + n + 1) * V));
  return s / examples;
}

/**
 * Normalised effects at or below this size are float32 noise of the forward pass (a batched sweep
 * that starts at a layer differs from a full run in the last bits), not effects: top lists leave them out.
 */
export const NEGLIGIBLE_EFFECT = 1e-6;

/** (patched - corrupted) / (clean - corrupted): 1 = the site restores the clean behaviour, 0 = no effect. */
export function normalisedEffect(patched: number, clean: number, corrupted: number): number {
  const denom = clean - corrupted;
  return Math.abs(denom) < 1e-12 ? 0 : (patched - corrupted) / denom;
}

/** Whether a metric rises or falls with the behaviour, and whether a relative drop means anything for it. */
export const METRIC_DIRECTION: Record<MetricName, { direction: string; relative: boolean }> = {
  logit_diff: { direction: 'higher = more of the behaviour (target over distractor)', relative: true },
  prob: { direction: 'higher = more of the behaviour (target probability)', relative: true },
  logprob: { direction: 'higher (closer to 0) = more of the behaviour; a log scale, so no relative drop', relative: false },
  loss: { direction: 'lower = more of the behaviour (cross-entropy of the target); no relative drop', relative: false },
  kl: { direction: 'higher = further from the unmodified run (0 = identical); no relative drop', relative: false },
};

/**
 * (before - after) / before for metrics where that is a share of the behaviour removed (logit_diff,
 * prob, with a positive before); null otherwise (kl, loss, logprob: read before -> after instead).
 */
export function relativeDrop(metric: MetricName, before: number, after: number): number | null {
  if (!METRIC_DIRECTION[metric].relative || !(before > 0)) return null;
  return (before - after) / before;
}

/** "logit_diff 2.31 -> 0.12 (drop 95% of before; higher = ...)": the change in words, direction stated. */
export function describeChange(metric: MetricName, before: number, after: number): string {
  const rel = relativeDrop(metric, before, after);
  const moved = after > before ? 'rose' : after < before ? 'fell' : 'unchanged';
  const share = rel === null ? '' : `, ${(rel * 100).toPrecision(3)}% of before removed`;
  return `${metric} ${before} -> ${after} (${moved}${share}; ${METRIC_DIRECTION[metric].direction})`;
}

export const answerList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

/** One answer token per prompt: a word for all prompts or one word each; each must be a single token. */
export function answers(ctx: ToolContext, v: string | string[] | undefined, n: number, what: string): number[] {
  if (v === undefined) return [];
  const words = typeof v === 'string' ? new Array(n).fill(v) : v;
  if (words.length !== n) throw new ToolError(`${what} has ${words.length} entries for ${n} prompts; give one, or one per prompt`);
  return words.map((w) => ctx.session.tokenId(w, what));
}

/** Target and distractor ids, checked against what the metric needs (kl needs neither). */
export function metricAnswers(ctx: ToolContext, input: { metric: MetricName; target?: string | string[]; distractor?: string | string[] }, n: number): { targets: number[]; distractors: number[] } {
  const targets = answers(ctx, input.target, n, 'target');
  const distractors = answers(ctx, input.distractor, n, 'distractor');
  if (input.metric === 'logit_diff' && (targets.length === 0 || distractors.length === 0)) throw new ToolError('logit_diff needs a target and a distractor (the competing answer)');
  if ((input.metric === 'prob' || input.metric === 'logprob' || input.metric === 'loss') && targets.length === 0) throw new ToolError(`${input.metric} needs a target`);
  return { targets, distractors };
}

/** The metric spec with `reference` as the clean run (for kl), and the mean metric on that run's [N, 1, V] logits. */
export function metricOnRun(name: MetricName, a: { targets: number[]; distractors: number[] }, reference: Float32Array, V: number, N: number): { spec: MetricSpec; value: number } {
  const spec: MetricSpec = { name, ...a, cleanLogits: Array.from({ length: N }, (_, n) => reference.slice(n * V, (n + 1) * V)) };
  return { spec, value: meanMetric(spec, reference, V, N) };
}
