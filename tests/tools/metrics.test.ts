// Metric values on hand-made logits, computed independently here.
import { describe, expect, it } from 'vitest';
import { metricOf, normalisedEffect, type MetricSpec } from '../../tools/metrics.ts';

const logits = new Float32Array([2, 0, -1, 1]);
const lse = Math.log(Math.exp(2) + Math.exp(0) + Math.exp(-1) + Math.exp(1));
const spec = (name: MetricSpec['name']): MetricSpec => ({ name, targets: [3], distractors: [0], cleanLogits: [new Float32Array([0, 0, 0, 0])] });

describe('metrics', () => {
  it('logit_diff, prob, logprob and loss of the target', () => {
    expect(metricOf(spec('logit_diff'), 0, logits)).toBe(-1);
    expect(metricOf(spec('logprob'), 0, logits)).toBeCloseTo(1 - lse, 12);
    expect(metricOf(spec('prob'), 0, logits)).toBeCloseTo(Math.exp(1 - lse), 12);
    expect(metricOf(spec('loss'), 0, logits)).toBeCloseTo(lse - 1, 12);
  });

  it('kl(clean || run): uniform clean against these logits, and zero against itself', () => {
    const expected = [2, 0, -1, 1].reduce((s, x) => s + 0.25 * (Math.log(0.25) - (x - lse)), 0);
    expect(metricOf(spec('kl'), 0, logits)).toBeCloseTo(expected, 12);
    expect(metricOf({ ...spec('kl'), cleanLogits: [logits] }, 0, logits)).toBe(0);
  });

  it('normalised effect is 1 at clean, 0 at corrupted, and works for lower-is-better metrics', () => {
    expect(normalisedEffect(3, 3, 1)).toBe(1);
    expect(normalisedEffect(1, 3, 1)).toBe(0);
    expect(normalisedEffect(2.5, 0.5, 4.5)).toBeCloseTo(0.5, 12); // loss: clean 0.5, corrupted 4.5
    expect(normalisedEffect(2, 1, 1)).toBe(0);
  });
});
