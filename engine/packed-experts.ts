// Per-layer expert sessions whose weights are initializers, prepacked by onnxruntime once, so the E
// experts of a layer run in a few session calls (gate_up, then down) instead of one call per expert
// with its weights repacked on every call. Encodings (graphs/packed-experts.ts): `pairs` keeps MXFP4
// packed (~1.1 bytes per weight; wins when few rows read a large weight), `f32` holds the
// dequantised weights (4 bytes; half the multiply-adds, wins on many rows). With both resident,
// each expert's rows go to `f32` from F32_MIN_ROWS rows on, else to `pairs`.
import * as ort from 'onnxruntime-node';
import type { Checkpoint } from './checkpoint.ts';
import { buildLayerExpertsGraph, packedInput, packedOutput, type ExpertMatrix } from './graphs/packed-experts.ts';
import { mxfp4ToNibblePairs } from './mxfp4.ts';
import { createSession, type SessionOptions } from './sessions.ts';

export type ExpertEncoding = ExpertMatrix['kind'];

/** Rows of one expert from which the float32 encoding is used when both are resident. */
export const F32_MIN_ROWS = 48;

/** One session over a range of experts of one matrix. */
interface Part {
  first: number;
  count: number;
  kind: ExpertEncoding;
  session: ort.InferenceSession;
}

/** Sessions stay under protobuf's 2 GiB model limit: experts are split into ranges of at most this many bytes. */
const MAX_SESSION_BYTES = 2 ** 30;

export class LayerExperts {
  private readonly layers = new Map<number, Promise<{ gateUp: Part[]; down: Part[] }>>();

  constructor(private readonly checkpoint: Checkpoint, private readonly opts: SessionOptions, readonly encodings: readonly ExpertEncoding[]) {
    if (encodings.includes('pairs') && !checkpoint.expertsQuantized) throw new Error('the pairs encoding needs MXFP4 experts');
  }

  /** y for rows `x` [N_e, in] of each expert (null: no rows), for one layer's gate_up or down. */
  async run(layer: number, matrix: 'gateUp' | 'down', x: (Float32Array | null)[], inDim: number): Promise<(Float32Array | null)[]> {
    const parts = (await this.layer(layer))[matrix];
    const both = this.encodings.length === 2;
    const out: (Float32Array | null)[] = x.map(() => null);
    for (const part of parts) {
      const feeds: Record<string, ort.Tensor> = {};
      let any = false;
      for (let e = part.first; e < part.first + part.count; e++) {
        const rows = x[e] ? x[e]!.length / inDim : 0;
        const mine = rows > 0 && (!both || (part.kind === 'f32') === rows >= F32_MIN_ROWS);
        any ||= mine;
        feeds[packedInput(e)] = new ort.Tensor('float32', mine ? x[e]! : new Float32Array(0), [mine ? rows : 0, inDim]);
      }
      if (!any) continue;
      const res = await part.session.run(feeds);
      for (let e = part.first; e < part.first + part.count; e++) {
        if (feeds[packedInput(e)].dims[0] > 0) out[e] = res[packedOutput(e)].data as Float32Array;
      }
    }
    return out;
  }

  private layer(layer: number) {
    let s = this.layers.get(layer);
    if (!s) {
      s = this.build(layer);
      this.layers.set(layer, s);
      s.catch(() => this.layers.delete(layer));
    }
    return s;
  }

  private async build(layer: number): Promise<{ gateUp: Part[]; down: Part[] }> {
    const { hiddenSize: H, intermediateSize: I, numExperts: E } = this.checkpoint.config;
    const gateUp: Part[] = [];
    const down: Part[] = [];
    const matrixOf = (kind: ExpertEncoding, e: number, matrix: 'gateUp' | 'down'): ExpertMatrix => {
      if (kind === 'pairs') {
        const w = this.checkpoint.packedExpert(layer, e);
        const [rows, cols] = matrix === 'gateUp' ? [2 * I, H] : [H, I];
        return { kind, ...mxfp4ToNibblePairs(w[matrix].blocks, w[matrix].scales, rows, cols), bias: matrix === 'gateUp' ? w.gateUpB : w.downB };
      }
      const w = this.checkpoint.expert(layer, e);
      return matrix === 'gateUp' ? { kind, w: w.gateUpW, bias: w.gateUpB } : { kind, w: w.downW, bias: w.downB };
    };
    for (const kind of this.encodings) {
      for (const [matrix, inDim, outDim, into] of [['gateUp', H, 2 * I, gateUp], ['down', I, H, down]] as const) {
        // Built a range at a time, so only one range's weights are in JS memory at once.
        const step = Math.max(1, Math.floor(MAX_SESSION_BYTES / ((kind === 'f32' ? 4 : 1.125) * inDim * outDim)));
        for (let first = 0; first < E; first += step) {
          const range = Array.from({ length: Math.min(step, E - first) }, (_, j) => matrixOf(kind, first + j, matrix));
          const bytes = buildLayerExpertsGraph(`experts_${layer}_${matrix}_${kind}_${first}`, inDim, outDim, first, range);
          into.push({ first, count: range.length, kind, session: await createSession(bytes, this.opts) });
        }
      }
    }
    return { gateUp, down };
  }

  async release(): Promise<void> {
    const all = [...this.layers.values()];
    this.layers.clear();
    await Promise.all(all.map(async (p) => {
      const l = await p;
      await Promise.all([...l.gateUp, ...l.down].map((part) => part.session.release()));
    }));
  }
}
