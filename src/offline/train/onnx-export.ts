/** Writes a WindowPcaModel as an ONNX graph: raw window in, score and per-channel contributions out. */
import { ATTRIBUTE_INT, ONNX_IR_VERSION, ONNX_OPSET, TENSOR_FLOAT, TENSOR_INT64, onnxModelType } from './onnx-proto.js';
import type { WindowPcaModel } from './window-pca.js';

export const INPUT_NAME = 'window';
export const SCORE_NAME = 'score';
export const CONTRIBUTIONS_NAME = 'contributions';

interface ExportOptions {
  channels: readonly string[];
  /** Stored as the graph's doc string, for people who open the file in a viewer. */
  description: string;
}

/**
 * Graph: Sub(center) → ReduceMean over time → Mul(scale) = x; contributions = x ⊙ (x·M);
 * score = ReduceSum(contributions). Centring before the mean keeps float32 sums of readings
 * like 75.49 °C from losing the small deviations that matter.
 */
export function exportOnnx(model: WindowPcaModel, opts: ExportOptions): Uint8Array {
  const c = model.center.length;
  const floatTensor = (name: string, dims: number[], data: Float64Array) => ({
    name,
    dims,
    data_type: TENSOR_FLOAT,
    raw_data: littleEndian(new Float32Array(data)),
  });
  const int64Tensor = (name: string, values: number[]) => {
    const data = new BigInt64Array(values.map((v) => BigInt(v)));
    return { name, dims: [values.length], data_type: TENSOR_INT64, raw_data: littleEndian(data) };
  };
  const keepdims = { name: 'keepdims', type: ATTRIBUTE_INT, i: 0 };
  const node = (op_type: string, input: string[], output: string[], attribute: object[] = []) => ({
    op_type,
    input,
    output,
    name: output[0],
    attribute,
  });
  const tensorType = (dims: (number | string)[]) => ({
    tensor_type: {
      elem_type: TENSOR_FLOAT,
      shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
    },
  });

  const graph = {
    name: 'sentinel_window_pca',
    doc_string: opts.description,
    initializer: [
      floatTensor('center', [c], model.center),
      floatTensor('scale', [c], model.scale),
      floatTensor('metric', [c, c], model.metric),
      int64Tensor('time_axis', [1]),
      int64Tensor('channel_axis', [1]),
    ],
    node: [
      node('Sub', [INPUT_NAME, 'center'], ['centred']),
      node('ReduceMean', ['centred', 'time_axis'], ['window_mean'], [keepdims]),
      node('Mul', ['window_mean', 'scale'], ['scaled']),
      node('MatMul', ['scaled', 'metric'], ['pulled']),
      node('Mul', ['scaled', 'pulled'], [CONTRIBUTIONS_NAME]),
      node('ReduceSum', [CONTRIBUTIONS_NAME, 'channel_axis'], [SCORE_NAME], [keepdims]),
    ],
    input: [{ name: INPUT_NAME, type: tensorType(['batch', model.window, c]) }],
    output: [
      { name: SCORE_NAME, type: tensorType(['batch']) },
      { name: CONTRIBUTIONS_NAME, type: tensorType(['batch', c]) },
    ],
  };
  const type = onnxModelType();
  const message = type.fromObject({
    ir_version: ONNX_IR_VERSION,
    opset_import: [{ domain: '', version: ONNX_OPSET }],
    producer_name: 'sentinel',
    producer_version: '1',
    graph,
    metadata_props: [{ key: 'channels', value: opts.channels.join(',') }],
  });
  return type.encode(message).finish();
}

function littleEndian(data: Float32Array | BigInt64Array): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // Typed arrays use the host byte order; ONNX raw_data is little-endian.
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) return bytes.slice();
  const out = new Uint8Array(bytes.length);
  const size = data.BYTES_PER_ELEMENT;
  for (let i = 0; i < bytes.length; i += size) for (let k = 0; k < size; k++) out[i + k] = bytes[i + size - 1 - k]!;
  return out;
}
