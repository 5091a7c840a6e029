// A sparse dictionary (SAE or transcoder) in SAELens's parameterisation, and its inference math as
// two small onnxruntime graphs (encode, decode) so splicing it into a forward never loops in JS:
//   pre  = (x - b_dec if applyBDecToInput) @ W_enc + b_enc            [N, dSae]
//   acts = relu(pre)                      ('relu', SAELens "standard")
//        = relu(pre) * (pre > threshold)  ('jumprelu')
//        = relu of the k largest of pre, 0 elsewhere ('topk')
//   out  = acts @ W_dec + b_dec                                        [N, dOut]
// An SAE reconstructs its input (dOut = dIn, hookOut absent); a transcoder predicts another hook's
// value from this one (e.g. ln2.hook_normalized -> hook_mlp_out).
import * as ort from 'onnxruntime-node';
import { GraphBuilder, int } from '../onnx/graph-builder.ts';

export type SaeArchitecture = 'relu' | 'jumprelu' | 'topk';
export const SAE_ARCHITECTURES: readonly SaeArchitecture[] = ['relu', 'jumprelu', 'topk'];

export interface SparseDictionary {
  architecture: SaeArchitecture;
  dIn: number;
  dSae: number;
  /** Output width: dIn for an SAE, the target hook's width for a transcoder. */
  dOut: number;
  /** Latents kept per token ('topk'). */
  k?: number;
  /** The hook the dictionary reads, e.g. "blocks.2.hook_resid_post". */
  hook: string;
  /** Transcoders only: the hook whose value the decoder predicts. */
  hookOut?: string;
  modelName: string;
  /** SAELens's apply_b_dec_to_input: subtract b_dec before encoding (SAEs only). */
  applyBDecToInput: boolean;
  /** Row-major [dIn, dSae]. */
  wEnc: Float32Array;
  bEnc: Float32Array;
  /** Row-major [dSae, dOut]: row i is latent i's direction. */
  wDec: Float32Array;
  bDec: Float32Array;
  /** 'jumprelu' only: per-latent threshold [dSae]. */
  threshold?: Float32Array;
}

export class DictionaryError extends Error {
  override name = 'DictionaryError';
}

/** Checks sizes and architecture-specific fields; throws saying what is wrong. */
export function checkDictionary(d: SparseDictionary, where = 'dictionary'): void {
  const need = (cond: boolean, msg: string) => {
    if (!cond) throw new DictionaryError(`${where}: ${msg}`);
  };
  need(SAE_ARCHITECTURES.includes(d.architecture), `architecture "${d.architecture}" is not supported; supported: ${SAE_ARCHITECTURES.join(', ')}`);
  for (const [n, v] of [['d_in', d.dIn], ['d_sae', d.dSae], ['d_out', d.dOut]] as const) need(Number.isInteger(v) && v > 0, `${n} must be a positive integer, got ${v}`);
  need(d.wEnc.length === d.dIn * d.dSae, `W_enc has ${d.wEnc.length} values; [d_in, d_sae] = [${d.dIn}, ${d.dSae}] needs ${d.dIn * d.dSae}`);
  need(d.bEnc.length === d.dSae, `b_enc has ${d.bEnc.length} values; d_sae = ${d.dSae}`);
  need(d.wDec.length === d.dSae * d.dOut, `W_dec has ${d.wDec.length} values; [d_sae, d_out] = [${d.dSae}, ${d.dOut}] needs ${d.dSae * d.dOut}`);
  need(d.bDec.length === d.dOut, `b_dec has ${d.bDec.length} values; d_out = ${d.dOut}`);
  if (d.architecture === 'topk') need(Number.isInteger(d.k) && d.k! >= 1 && d.k! <= d.dSae, `topk needs k in 1..${d.dSae}, got ${d.k}`);
  if (d.architecture === 'jumprelu') need(d.threshold?.length === d.dSae, `jumprelu needs a threshold of d_sae = ${d.dSae} values, got ${d.threshold?.length ?? 'none'}`);
  need(!(d.applyBDecToInput && d.dIn !== d.dOut), `apply_b_dec_to_input needs d_in = d_out (an SAE); this dictionary maps ${d.dIn} -> ${d.dOut}`);
  need(typeof d.hook === 'string' && d.hook.length > 0, 'the hook it reads (hook_name) is missing');
}

/** The latent activation graph: x [N, dIn] -> acts [N, dSae] (also used inside the trainer's graph). */
export function encodeOps(g: GraphBuilder, d: Pick<SparseDictionary, 'architecture' | 'applyBDecToInput' | 'k'>, x: string, wEnc: string, bEnc: string, bDec: string, threshold?: string) {
  const xc = d.applyBDecToInput ? g.op('Sub', [x, bDec]) : x;
  const pre = g.op('Add', [g.op('MatMul', [xc, wEnc]), bEnc]);
  let acts: string;
  if (d.architecture === 'topk') {
    const [vals, idx] = g.opN('TopK', [pre, g.constInt64([d.k!])], 2, { axis: int(1), largest: int(1), sorted: int(0) });
    const zeros = g.op('ConstantOfShape', [g.op('Shape', [pre])]);
    acts = g.op('ScatterElements', [zeros, idx, g.op('Relu', [vals])], { axis: int(1) });
  } else if (d.architecture === 'jumprelu') {
    acts = g.op('Mul', [g.op('Relu', [pre]), g.op('Cast', [g.op('Greater', [pre, threshold!])], { to: int(1) })]);
  } else {
    acts = g.op('Relu', [pre]);
  }
  return { xc, pre, acts };
}

function encodeGraph(d: SparseDictionary): Uint8Array {
  const g = new GraphBuilder('sae_encode');
  const x = g.input('x', ['N', d.dIn]);
  const wEnc = g.input('W_enc', [d.dIn, d.dSae]);
  const bEnc = g.input('b_enc', [d.dSae]);
  const bDec = g.input('b_dec', [d.dOut]);
  const thr = d.architecture === 'jumprelu' ? g.input('threshold', [d.dSae]) : undefined;
  g.output('acts', encodeOps(g, d, x, wEnc, bEnc, bDec, thr).acts);
  return g.build();
}

function decodeGraph(d: SparseDictionary): Uint8Array {
  const g = new GraphBuilder('sae_decode');
  const acts = g.input('acts', ['N', d.dSae]);
  const wDec = g.input('W_dec', [d.dSae, d.dOut]);
  const bDec = g.input('b_dec', [d.dOut]);
  g.output('out', g.op('Add', [g.op('MatMul', [acts, wDec]), bDec]));
  return g.build();
}

const f32 = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);

/** A dictionary with its compiled encode/decode sessions; rows are tokens (any leading shape flattened). */
export class DictionaryRunner {
  private sessions: Promise<[ort.InferenceSession, ort.InferenceSession]> | null = null;

  constructor(readonly dict: SparseDictionary, private readonly threads = 0) {
    checkDictionary(dict);
  }

  private get compiled() {
    const opts: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: this.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
    this.sessions ??= Promise.all([
      ort.InferenceSession.create(encodeGraph(this.dict), opts),
      ort.InferenceSession.create(decodeGraph(this.dict), opts),
    ]);
    return this.sessions;
  }

  /** x: N rows of dIn -> N rows of dSae. */
  async encode(x: Float32Array): Promise<Float32Array> {
    const d = this.dict;
    if (x.length % d.dIn !== 0) throw new DictionaryError(`encode: ${x.length} values is not a whole number of rows of d_in = ${d.dIn}`);
    const [enc] = await this.compiled;
    const feeds: Record<string, ort.Tensor> = {
      x: f32(x, [x.length / d.dIn, d.dIn]), W_enc: f32(d.wEnc, [d.dIn, d.dSae]), b_enc: f32(d.bEnc, [d.dSae]), b_dec: f32(d.bDec, [d.dOut]),
    };
    if (d.threshold) feeds.threshold = f32(d.threshold, [d.dSae]);
    return (await enc.run(feeds)).acts.data as Float32Array;
  }

  /** acts: N rows of dSae -> N rows of dOut. */
  async decode(acts: Float32Array): Promise<Float32Array> {
    const d = this.dict;
    if (acts.length % d.dSae !== 0) throw new DictionaryError(`decode: ${acts.length} values is not a whole number of rows of d_sae = ${d.dSae}`);
    const [, dec] = await this.compiled;
    const out = await dec.run({ acts: f32(acts, [acts.length / d.dSae, d.dSae]), W_dec: f32(d.wDec, [d.dSae, d.dOut]), b_dec: f32(d.bDec, [d.dOut]) });
    return out.out.data as Float32Array;
  }

  async release(): Promise<void> {
    if (!this.sessions) return;
    const s = await this.sessions;
    this.sessions = null;
    await Promise.all(s.map((x) => x.release()));
  }
}
