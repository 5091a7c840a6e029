// The steps of the standard steering experiment, written once: suite experiment 3 and the agent's
// sentiment protocol run this function, each through its own ToolPort. A contrast vector
// (positive minus negative contexts) is tried entering every layer, the best layer is swept over
// coefficients at the last token, a 3-token window and every token, and a contrast built from
// shuffled labels is the control.
import type { TaskExample } from '../prompt-sets.ts';
import type { StepResult, ToolPort } from './port.ts';

export type SteeringMode = 'last' | 'window' | 'all';
export const STEERING_MODES: readonly SteeringMode[] = ['last', 'window', 'all'];
export const STEERING_COEFFICIENTS = [0, 0.5, 1, 2, 4];
export const STEERING_WINDOW = 3;

export interface SteeringSteps {
  /** The steered prompts: negative contexts, scored as logit(positive word) - logit(negative word). */
  prompts: TaskExample[];
  perLayer: { layer: number; shift: number; experimentId: string; vector: string }[];
  best: { layer: number; shift: number; experimentId: string; vector: string };
  coefficients: number[];
  /** The largest coefficient, where the modes are compared. */
  top: number;
  sweep: StepResult<'steer'>;
  control: StepResult<'steer'>;
  /** One sweep row (mode x coefficient). */
  at(mode: SteeringMode, coefficient: number): StepResult<'steer'>['rows'][number];
  shiftAll: number;
  shiftWindow: number;
  shiftLast: number;
  controlShift: number;
  /** The unsteered answer is negative and every-token steering at the top coefficient makes it positive. */
  flipped: boolean;
}

/** Half of each class on each side: a contrast with the same words and no sentiment. */
export function shuffledContrast(contrast: { positive: string[]; negative: string[] }): { positive: string[]; negative: string[] } {
  const half = (xs: string[], k: 0 | 1) => xs.filter((_, i) => i % 2 === k);
  return { positive: [...half(contrast.positive, 0), ...half(contrast.negative, 0)], negative: [...half(contrast.positive, 1), ...half(contrast.negative, 1)] };
}

export async function sentimentSteering(
  port: ToolPort,
  sets: { sentiment: TaskExample[]; contrast: { positive: string[]; negative: string[] } },
  numLayers: number,
  opts: { vectorPrefix?: string; generateTokens?: number } = {},
): Promise<SteeringSteps> {
  const neg = sets.sentiment.filter((_, i) => i % 2 === 1).slice(0, 6);
  const base = { prompts: neg.map((e) => e.prompt), target: neg.map((e) => e.distractor), distractor: neg.map((e) => e.target), hook: 'resid_pre' as const };
  const contrast = { positive: sets.contrast.positive, negative: sets.contrast.negative };

  const perLayer: SteeringSteps['perLayer'] = [];
  for (let layer = 0; layer < numLayers; layer++) {
    const r = await port.call(`sentiment: contrast vector entering layer ${layer}, every token, coefficient 1`, 'steer', {
      ...base, vector: contrast, layer, coefficients: [1], modes: ['all'], generateTokens: 0,
      ...(opts.vectorPrefix ? { saveAs: `${opts.vectorPrefix}_L${layer}` } : {}),
    });
    perLayer.push({ layer, shift: r.rows[0].shift, experimentId: r.experimentId, vector: r.vector });
  }
  const best = perLayer.reduce((a, b) => (b.shift > a.shift ? b : a));

  const coefficients = STEERING_COEFFICIENTS;
  const sweep = await port.call(`sentiment: coefficient sweep entering layer ${best.layer}, last token vs window vs every token`, 'steer', {
    ...base, vector: { name: best.vector }, layer: best.layer, coefficients, modes: [...STEERING_MODES], window: STEERING_WINDOW, generateTokens: opts.generateTokens ?? 4,
  });
  const top = coefficients[coefficients.length - 1];
  const control = await port.call(`sentiment control: shuffled-label contrast entering layer ${best.layer}`, 'steer', {
    ...base, vector: shuffledContrast(contrast), layer: best.layer, coefficients: [top], modes: ['all'], generateTokens: 0,
  });
  const at = (mode: SteeringMode, c: number) => {
    const row = sweep.rows.find((r) => r.mode === mode && r.coefficient === c);
    if (!row) throw new Error(`steer returned no row for mode ${mode} at coefficient ${c}`);
    return row;
  };
  return {
    prompts: neg, perLayer, best, coefficients, top, sweep, control, at,
    shiftAll: at('all', top).shift, shiftWindow: at('window', top).shift, shiftLast: at('last', top).shift,
    controlShift: control.rows[0].shift,
    flipped: sweep.base < 0 && at('all', top).metric > 0,
  };
}
