// One layer's expert matmuls on MXFP4 weights kept packed, as session initializers (onnxruntime
// prepacks them once): x_e [N_e, in] -> y_e = x_e W_e^T + b_e [N_e, out] for every expert e in one
// session run. W_e is the exact 4-bit pair form of mxfp4ToNibblePairs: a MatMulNBits (block 64,
// float32 accumulation) on x_e with each 32-column chunk repeated.
import { GraphBuilder, int } from '../onnx/graph-builder.ts';

export interface PackedMatrix {
  /** [out, in/32, 32] nibble-pair bytes and [out * in/32] scales, from mxfp4ToNibblePairs. */
  q: Uint8Array;
  scales: Float32Array;
  bias: Float32Array;
}

export const packedInput = (e: number): string => `x${e}`;
export const packedOutput = (e: number): string => `y${e}`;

/** Accuracy level 1: onnxruntime dequantises blocks to float32 and accumulates in float32 (never int8). */
const FLOAT32_ACCURACY = 1;

export function buildPackedExpertsGraph(name: string, inDim: number, outDim: number, experts: readonly PackedMatrix[]): Uint8Array {
  const g = new GraphBuilder(name);
  const blocks = inDim / 32;
  experts.forEach((w, e) => {
    const x = g.input(packedInput(e), ['N', inDim]);
    const chunks = g.op('Reshape', [x, g.constInt64([-1, blocks, 32])]);
    const doubled = g.op('Reshape', [g.op('Concat', [chunks, chunks], { axis: int(2) }), g.constInt64([-1, 2 * inDim])]);
    const q = g.constRaw('uint8', w.q, [outDim, blocks, 32]);
    const s = g.constRaw('float', new Uint8Array(w.scales.buffer, w.scales.byteOffset, w.scales.byteLength), [outDim * blocks]);
    const y = g.msOp('MatMulNBits', [doubled, q, s], {
      K: int(2 * inDim), N: int(outDim), bits: int(4), block_size: int(64), accuracy_level: int(FLOAT32_ACCURACY),
    });
    const b = g.constRaw('float', new Uint8Array(w.bias.buffer, w.bias.byteOffset, w.bias.byteLength), [outDim]);
    g.output(packedOutput(e), g.op('Add', [y, b]));
  });
  return g.build();
}

/** Bytes one expert's two packed matrices hold (nibble pairs, float32 scales and biases). */
export function packedExpertBytes(H: number, I: number): number {
  const matrix = (out: number, inDim: number) => out * inDim + 4 * out * (inDim / 32) + 4 * out;
  return matrix(2 * I, H) + matrix(H, I);
}
