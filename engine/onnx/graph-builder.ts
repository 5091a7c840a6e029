// A small builder over onnx-proto: the engine writes its graphs in code (one per layer part) rather
// than shipping .onnx files, so hook outputs and intervention inputs can be added per request.
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

// onnx-proto is CommonJS: take the runtime namespace from the default export, the types by name.
const { onnx } = onnxProto as unknown as { onnx: typeof OnnxTypes };
const OPSET = 17; // ReduceMean/ReduceSum keep `axes` as an attribute up to 17 (ReduceSum: input since 13)

const MS_DOMAIN = 'com.microsoft';

export type Dim = number | string;
export type AttrValue = { i: number } | { f: number } | { ints: number[] } | { s: string };
export const int = (i: number): AttrValue => ({ i });
export const float = (f: number): AttrValue => ({ f });
export const ints = (v: number[]): AttrValue => ({ ints: v });

const ELEM = {
  float: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  uint8: onnx.TensorProto.DataType.UINT8,
  int8: onnx.TensorProto.DataType.INT8,
} as const;
export type ElemType = keyof typeof ELEM;

function valueInfo(name: string, dims: Dim[], type: ElemType): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): OnnxTypes.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in v) return { name, type: T.INT, i: v.i };
  if ('f' in v) return { name, type: T.FLOAT, f: v.f };
  if ('ints' in v) return { name, type: T.INTS, ints: v.ints };
  return { name, type: T.STRING, s: new TextEncoder().encode(v.s) };
}

export class GraphBuilder {
  private readonly nodes: OnnxTypes.INodeProto[] = [];
  private readonly inputs: OnnxTypes.IValueInfoProto[] = [];
  private readonly outputs: OnnxTypes.IValueInfoProto[] = [];
  private readonly initializers: OnnxTypes.ITensorProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;
  private usesMs = false;

  constructor(private readonly graphName: string) {}

  /** A fresh internal tensor name. */
  private fresh(hint: string): string {
    let name: string;
    do name = `${hint}_${this.counter++}`;
    while (this.names.has(name));
    this.names.add(name);
    return name;
  }

  input(name: string, dims: Dim[], type: ElemType = 'float'): string {
    this.names.add(name);
    this.inputs.push(valueInfo(name, dims, type));
    return name;
  }

  /** Marks `value` as a graph output called `name` (through Identity so any value can be exposed). */
  output(name: string, value: string): void {
    this.names.add(name);
    this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: `out_${name}` });
    this.outputs.push({ name });
  }

  hasOutputs(): boolean {
    return this.outputs.length > 0;
  }

  constInt64(values: number[], dims: number[] = [values.length]): string {
    const name = this.fresh('c');
    this.initializers.push({ name, dims, dataType: ELEM.int64, int64Data: values });
    return name;
  }

  constFloat(values: number[], dims: number[] = [values.length]): string {
    const name = this.fresh('c');
    this.initializers.push({ name, dims, dataType: ELEM.float, floatData: values });
    return name;
  }

  /** A constant stored as raw little-endian bytes (e.g. uint8 weights kept packed). */
  constRaw(type: ElemType, bytes: Uint8Array, dims: number[]): string {
    const name = this.fresh('w');
    this.initializers.push({ name, dims, dataType: ELEM[type], rawData: bytes });
    return name;
  }

  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.opN(opType, inputs, 1, attrs)[0];
  }

  /** An operator of onnxruntime's com.microsoft domain (e.g. MatMulNBits). */
  msOp(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    const [out] = this.opN(opType, inputs, 1, attrs);
    const node = this.nodes[this.nodes.length - 1];
    node.domain = MS_DOMAIN;
    this.usesMs = true;
    return out;
  }

  opN(opType: string, inputs: string[], nOut: number, attrs: Record<string, AttrValue> = {}): string[] {
    const output = Array.from({ length: nOut }, () => this.fresh(opType.toLowerCase()));
    this.nodes.push({
      opType,
      input: inputs,
      output,
      name: this.fresh(`n_${opType}`),
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return output;
  }

  build(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'neuroscope',
      opsetImport: [{ domain: '', version: OPSET }, ...(this.usesMs ? [{ domain: MS_DOMAIN, version: 1 }] : [])],
      graph: {
        name: this.graphName,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
