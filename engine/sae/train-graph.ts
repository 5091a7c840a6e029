// One TopK training step as a single onnxruntime graph: forward, the hand-derived backward and the
// Adam update, so the trainer's JS only moves buffers. For an SAE y = x; a transcoder predicts y
// from x. With E = acts @ W_dec + b_dec - y and loss = sum(E^2) / N (squared error per token):
//   g_out   = 2 E / N                                  (fed as `gscale` = 2 / N)
//   g_W_dec = acts^T g_out        g_b_dec = sum_n g_out
//   g_pre   = (g_out W_dec^T) * [acts > 0]             (TopK picks are held fixed; relu' on them)
//   g_W_enc = xc^T g_pre          g_b_enc = sum_n g_pre
//   SAE with b_dec subtracted from the input: g_b_dec -= W_enc g_b_enc (= sum_n g_pre W_enc^T)
// Adam (bias correction folded into `lr` by the caller), then each decoder row is scaled back to
// unit norm: the scale moves into the encoder, and W_dec's rows stay comparable directions.
import { GraphBuilder, int } from '../onnx/graph-builder.ts';
import { encodeOps } from './dictionary.ts';

export interface TrainShape {
  dIn: number;
  dOut: number;
  dSae: number;
  k: number;
  /** SAE (subtract b_dec from the input) vs transcoder. */
  applyBDecToInput: boolean;
}

export const PARAMS = ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const;
export type ParamName = (typeof PARAMS)[number];

export function paramDims(s: TrainShape): Record<ParamName, number[]> {
  return { W_enc: [s.dIn, s.dSae], b_enc: [s.dSae], W_dec: [s.dSae, s.dOut], b_dec: [s.dOut] };
}

export const ADAM = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

/**
 * Inputs: x [N, dIn], y [N, dOut], the four params, m_<p> and v_<p> for each, lr [1], gscale [1].
 * Outputs: new_<p>, new_m_<p>, new_v_<p>, sse (sum of squared error, scalar), fired [dSae] (tokens
 * on which each latent was active).
 */
export function buildTrainStepGraph(s: TrainShape): Uint8Array {
  const g = new GraphBuilder('sae_train_step');
  const x = g.input('x', ['N', s.dIn]);
  const y = g.input('y', ['N', s.dOut]);
  const dims = paramDims(s);
  const p = Object.fromEntries(PARAMS.map((n) => [n, g.input(n, dims[n])])) as Record<ParamName, string>;
  const m = Object.fromEntries(PARAMS.map((n) => [n, g.input(`m_${n}`, dims[n])])) as Record<ParamName, string>;
  const v = Object.fromEntries(PARAMS.map((n) => [n, g.input(`v_${n}`, dims[n])])) as Record<ParamName, string>;
  const lr = g.input('lr', [1]);
  const gscale = g.input('gscale', [1]);
  const axis0 = g.constInt64([0]);
  const sum0 = (t: string) => g.op('ReduceSum', [t, axis0], { keepdims: int(0) });
  // Products with a transposed operand as Gemm flags, so no transposed copy of a weight is made.
  const mm = (a: string, b: string, transA = 0, transB = 0) => g.op('Gemm', [a, b], { transA: int(transA), transB: int(transB) });

  const { xc, acts } = encodeOps(g, { architecture: 'topk', k: s.k, applyBDecToInput: s.applyBDecToInput }, x, p.W_enc, p.b_enc, p.b_dec);
  const recon = g.op('Add', [g.op('MatMul', [acts, p.W_dec]), p.b_dec]);
  const err = g.op('Sub', [recon, y]);
  g.output('sse', g.op('ReduceSum', [g.op('Mul', [err, err])], { keepdims: int(0) }));
  const active = g.op('Cast', [g.op('Greater', [acts, g.constFloat([0], [])])], { to: int(1) });
  g.output('fired', sum0(active));

  const gOut = g.op('Mul', [err, gscale]);
  const grads: Record<ParamName, string> = {
    W_dec: mm(acts, gOut, 1, 0),
    b_dec: sum0(gOut),
    W_enc: '',
    b_enc: '',
  };
  const gPre = g.op('Mul', [mm(gOut, p.W_dec, 0, 1), active]);
  grads.W_enc = mm(xc, gPre, 1, 0);
  grads.b_enc = sum0(gPre);
  if (s.applyBDecToInput) grads.b_dec = g.op('Sub', [grads.b_dec, g.op('MatMul', [p.W_enc, grads.b_enc])]);

  const c = (f: number) => g.constFloat([f], []);
  for (const n of PARAMS) {
    const m2 = g.op('Add', [g.op('Mul', [m[n], c(ADAM.beta1)]), g.op('Mul', [grads[n], c(1 - ADAM.beta1)])]);
    const v2 = g.op('Add', [g.op('Mul', [v[n], c(ADAM.beta2)]), g.op('Mul', [g.op('Mul', [grads[n], grads[n]]), c(1 - ADAM.beta2)])]);
    let p2 = g.op('Sub', [p[n], g.op('Mul', [lr, g.op('Div', [m2, g.op('Add', [g.op('Sqrt', [v2]), c(ADAM.eps)])])])]);
    if (n === 'W_dec') {
      const norm = g.op('Sqrt', [g.op('ReduceSum', [g.op('Mul', [p2, p2]), g.constInt64([1])], { keepdims: int(1) })]);
      p2 = g.op('Div', [p2, g.op('Max', [norm, c(1e-8)])]);
    }
    g.output(`new_${n}`, p2);
    g.output(`new_m_${n}`, m2);
    g.output(`new_v_${n}`, v2);
  }
  return g.build();
}
