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

/** Where one expert's rows sit in a layer's stacked expert inputs and outputs. */
export interface ExpertSpan {
  start: number;
  count: number;
}

/** Rows of one expert from which the float32 encoding is used when both are resident. */
export const F32_MIN_ROWS = 48;

/** One session over a range of experts of one matrix. */
interface Part {
  first: number;
  count: number;
  kind: ExpertEncoding;
  session: ort.InferenceSession;
}

/**
 * Pairs experts with at most this many rows run one row per session call: onnxruntime's one-row
 * MatMulNBits kernel decodes the 4-bit blocks as it multiplies, while from 2 rows it first decodes
 * them into a float32 buffer, which costs about what 4 one-row calls do (measured under load, one
 * 2880 x 5760 matrix: 2 rows 49 ms in one call vs 26 ms as two, 3 rows 60 vs 42, 4 rows 54 vs 61).
 */
const ONE_ROW_MAX = 3;

/** Sessions stay under protobuf's 2 GiB model limit: experts are split into ranges of at most this many bytes. */
const MAX_SESSION_BYTES = 2 ** 30;

export class LayerExperts {
  private readonly layers = new Map<number, Promise<{ gateUp: Part[]; down: Part[] }>>();

  constructor(private readonly checkpoint: Checkpoint, private readonly opts: SessionOptions, readonly encodings: readonly ExpertEncoding[]) {
    if (encodings.includes('pairs') && !checkpoint.expertsQuantized) throw new Error('the pairs encoding needs MXFP4 experts');
  }

  /**
   * One layer's gate_up or down for every expert at once: expert e's rows are rows
   * spans[e].start..+count of the stacked input x [rows, inDim], and its outputs are written to the
   * same rows of y [rows, outDim] (onnxruntime writes there directly: no output buffers per call).
   */
  async run(layer: number, matrix: 'gateUp' | 'down', x: Float32Array, y: Float32Array, spans: readonly ExpertSpan[], inDim: number, outDim: number): Promise<void> {
    const parts = (await this.layer(layer))[matrix];
    const both = this.encodings.length === 2;
    const empty = new Float32Array(0);
    for (const part of parts) {
      // Pass r feeds each expert rows [from, to) of its own: everything in pass 0, except that a
      // pairs expert with 2..ONE_ROW_MAX rows gives one row per pass.
      const rowsIn = (count: number, r: number): [number, number] => {
        if (part.kind === 'pairs' && count <= ONE_ROW_MAX) return r < count ? [r, r + 1] : [0, 0];
        return r === 0 ? [0, count] : [0, 0];
      };
      for (let r = 0; ; r++) {
        const feeds: Record<string, ort.Tensor> = {};
        const fetches: Record<string, ort.Tensor> = {};
        for (let e = part.first; e < part.first + part.count; e++) {
          const { start, count } = spans[e];
          const mine = count > 0 && (!both || (part.kind === 'f32') === count >= F32_MIN_ROWS);
          const [from, to] = mine ? rowsIn(count, r) : [0, 0];
          const n = to - from;
          const at = start + from;
          feeds[packedInput(e)] = n > 0 ? new ort.Tensor('float32', x.subarray(at * inDim, (at + n) * inDim), [n, inDim]) : new ort.Tensor('float32', empty, [0, inDim]);
          if (n > 0) fetches[packedOutput(e)] = new ort.Tensor('float32', y.subarray(at * outDim, (at + n) * outDim), [n, outDim]);
        }
        if (Object.keys(fetches).length === 0) break;
        await part.session.run(feeds, fetches);
      }
    }
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
