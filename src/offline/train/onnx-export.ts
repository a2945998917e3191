/** Writes a model as an ONNX graph: a window in, score and per-channel contributions out (and per-test scores for baseline-tests). */
import { STUCK_EPSILON, TEST_NAMES, type BaselineTestsModel } from './baseline-tests.js';
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
  return encodeModel(graph, opts.channels);
}

/** The ModelProto around a graph, as every family writes it (the channels as metadata). */
function encodeModel(graph: object, channels: readonly string[]): Uint8Array {
  const type = onnxModelType();
  const message = type.fromObject({
    ir_version: ONNX_IR_VERSION,
    opset_import: [{ domain: '', version: ONNX_OPSET }],
    producer_name: 'sentinel',
    producer_version: '1',
    graph,
    metadata_props: [{ key: 'channels', value: channels.join(',') }],
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

export const TESTS_NAME = 'tests';
export const TEST_CHANNELS_NAME = 'test_channels';

/**
 * The baseline-tests graph over normalised windows z [batch, window, channels]:
 * level = ((ReduceMean_t z − center) · scale) ⊙ (… · M) · invLevel per channel, summed;
 * spike = |z[newest]| · invSpike; rough = √(ReduceSumSquare_t(z[1:] − z[:-1]) / (window − 1));
 * noise = rough · invNoise; stuck = invStuck / (rough + ε). The per-channel tests are maxed over channels,
 * the level test summed; score = the largest test, contributions = each channel's largest test.
 */
export function exportTestsOnnx(model: BaselineTestsModel, opts: ExportOptions): Uint8Array {
  const c = model.level.center.length;
  const w = model.window;
  const t = TEST_NAMES.length;
  const floatTensor = (name: string, dims: number[], data: ArrayLike<number>) => ({
    name,
    dims,
    data_type: TENSOR_FLOAT,
    raw_data: littleEndian(Float32Array.from(data)),
  });
  const int64Tensor = (name: string, values: number[]) => {
    const data = new BigInt64Array(values.map((v) => BigInt(v)));
    return { name, dims: [values.length], data_type: TENSOR_INT64, raw_data: littleEndian(data) };
  };
  const keep = (k: 0 | 1) => ({ name: 'keepdims', type: ATTRIBUTE_INT, i: k });
  const axis = (a: number) => ({ name: 'axis', type: ATTRIBUTE_INT, i: a });
  const node = (op_type: string, input: string[], output: string[], attribute: object[] = []) => ({ op_type, input, output, name: output[0], attribute });
  const tensorType = (dims: (number | string)[]) => ({
    tensor_type: { elem_type: TENSOR_FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } },
  });
  const graph = {
    name: 'sentinel_baseline_tests',
    doc_string: opts.description,
    initializer: [
      floatTensor('center', [c], model.level.center),
      floatTensor('scale', [c], model.level.scale),
      floatTensor('metric', [c, c], model.level.metric),
      floatTensor('inv_level', [1], [model.invLevel]),
      floatTensor('inv_spike', [c], model.invSpike),
      floatTensor('inv_noise', [c], model.invNoise),
      floatTensor('inv_stuck', [c], model.invStuck),
      floatTensor('diff_norm', [1], [1 / (w - 1)]),
      floatTensor('epsilon', [1], [STUCK_EPSILON]),
      int64Tensor('axis_1', [1]),
      int64Tensor('newest_start', [w - 1]),
      int64Tensor('newest_end', [w]),
      int64Tensor('zero', [0]),
      int64Tensor('one', [1]),
      int64Tensor('before_newest', [w - 1]),
      int64Tensor('after_oldest', [w]),
    ],
    node: [
      node('ReduceMean', [INPUT_NAME, 'axis_1'], ['window_mean'], [keep(0)]),
      node('Sub', ['window_mean', 'center'], ['centred']),
      node('Mul', ['centred', 'scale'], ['scaled']),
      node('MatMul', ['scaled', 'metric'], ['pulled']),
      node('Mul', ['scaled', 'pulled'], ['level_parts']),
      node('Mul', ['level_parts', 'inv_level'], ['level_c']),
      node('Slice', [INPUT_NAME, 'newest_start', 'newest_end', 'axis_1'], ['newest']),
      node('Abs', ['newest'], ['newest_abs']),
      node('Mul', ['newest_abs', 'inv_spike'], ['spike_c3']),
      node('Slice', [INPUT_NAME, 'zero', 'before_newest', 'axis_1'], ['head']),
      node('Slice', [INPUT_NAME, 'one', 'after_oldest', 'axis_1'], ['tail']),
      node('Sub', ['tail', 'head'], ['step']),
      node('ReduceSumSquare', ['step', 'axis_1'], ['step_energy'], [keep(1)]),
      node('Mul', ['step_energy', 'diff_norm'], ['step_mean']),
      node('Sqrt', ['step_mean'], ['rough']),
      node('Mul', ['rough', 'inv_noise'], ['noise_c3']),
      node('Add', ['rough', 'epsilon'], ['rough_eps']),
      node('Reciprocal', ['rough_eps'], ['smooth']),
      node('Mul', ['smooth', 'inv_stuck'], ['stuck_c3']),
      node('Unsqueeze', ['level_c', 'axis_1'], ['level_c3']),
      node('Concat', ['level_c3', 'spike_c3', 'noise_c3', 'stuck_c3'], [TEST_CHANNELS_NAME], [axis(1)]),
      node('ReduceSum', ['level_c', 'axis_1'], ['level'], [keep(1)]),
      node('ReduceMax', ['spike_c3', 'axis_1'], ['spike_max'], [keep(0)]),
      node('ReduceMax', ['spike_max', 'axis_1'], ['spike'], [keep(1)]),
      node('ReduceMax', ['noise_c3', 'axis_1'], ['noise_max'], [keep(0)]),
      node('ReduceMax', ['noise_max', 'axis_1'], ['noise'], [keep(1)]),
      node('ReduceMax', ['stuck_c3', 'axis_1'], ['stuck_max'], [keep(0)]),
      node('ReduceMax', ['stuck_max', 'axis_1'], ['stuck'], [keep(1)]),
      node('Concat', ['level', 'spike', 'noise', 'stuck'], [TESTS_NAME], [axis(1)]),
      node('ReduceMax', [TESTS_NAME, 'axis_1'], [SCORE_NAME], [keep(0)]),
      node('ReduceMax', [TEST_CHANNELS_NAME, 'axis_1'], [CONTRIBUTIONS_NAME], [keep(0)]),
    ],
    input: [{ name: INPUT_NAME, type: tensorType(['batch', w, c]) }],
    output: [
      { name: SCORE_NAME, type: tensorType(['batch']) },
      { name: CONTRIBUTIONS_NAME, type: tensorType(['batch', c]) },
      { name: TESTS_NAME, type: tensorType(['batch', t]) },
      { name: TEST_CHANNELS_NAME, type: tensorType(['batch', t, c]) },
    ],
  };
  return encodeModel(graph, opts.channels);
}
