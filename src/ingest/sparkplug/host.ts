/**
 * The Sparkplug B host state machine, without a broker: each (topic, payload) goes in; readings,
 * rejections, stale streams and rebirth requests come out through `HostOutputs`.
 */
import type { Reading } from '../reading.js';
import { streamIdProblem } from '../stream-id.js';
import type { SparkplugConfig } from './config.js';
import { DataType, decodePayload, has, isNumericType, numericValue, uint64, type Metric, type Payload } from './payload.js';

/** Why a Sparkplug message or metric was turned away (the `reason` a rejection is counted under). */
export const sparkplugRejectReasons = [
  /** Payload over limits.maxPayloadBytes, dropped undecoded. */
  'oversized',
  /** Not a Sparkplug B protobuf payload. */
  'malformed',
  /** Not spBv1.0/<group>/<verb>/<edgeNode>[/<device>] with a known verb. */
  'bad_topic',
  /** The stream id is too long or holds control characters. */
  'bad_stream_id',
  /** A field the spec requires is missing or out of range (seq, bdSeq, alias, name). */
  'invalid_payload',
  /** The seq is not the one after the last: a message was lost; the edge node is asked for a rebirth. */
  'seq_gap',
  /** Data (or a DBIRTH) from an edge node or device with no valid birth: a rebirth is asked for. */
  'no_birth',
  /** An alias (or mapped name) that the births never declared: counted, never guessed; a rebirth is asked for. */
  'unknown_alias',
  /** A mapped metric whose data type is not a number, or whose value is not of its birth's type. */
  'wrong_type',
  /** NaN, ±Infinity, or beyond the float32 range. */
  'non_finite',
  /** A timestamp beyond 2^53 or too far in the future. */
  'bad_timestamp',
  /** A metric flagged is_historical while sparkplug.historical is drop. */
  'historical',
  /** A metric flagged is_null: no value to score. */
  'null_value',
  /** An NDEATH whose bdSeq is not that of the current session, or a death of something never born. */
  'stale_death',
  /** A new edge node beyond limits.maxEdgeNodes while every tracked one is online. */
  'node_limit',
  /** A new device beyond limits.maxDevices. */
  'device_limit',
  /** A message over limits.maxMetricsPerMessage, or a birth over limits.maxMetrics. */
  'metric_limit',
] as const;
export type SparkplugRejectReason = (typeof sparkplugRejectReasons)[number];

/** Why the host asked an edge node for its births again. */
export type RebirthCause = 'no_birth' | 'seq_gap' | 'unknown_alias';

/** Things that happen and are no problem, counted. */
export type HostEvent = 'nbirth' | 'dbirth' | 'ndeath' | 'ddeath' | 'unmapped_metric' | 'rebirth_held' | 'command_ignored';

export interface EdgeNodeRef {
  readonly group: string;
  readonly edgeNode: string;
}

export interface HostOutputs {
  reading(reading: Reading): void;
  rejected(reason: SparkplugRejectReason, detail: string): void;
  /** A stream's edge node or device died (NDEATH, DDEATH, or the broker connection was lost): a data gap, not an anomaly. */
  stale(streamId: string): void;
  /** Publish a rebirth request (NCMD Node Control/Rebirth) now; already rate-limited. */
  rebirth(node: EdgeNodeRef, cause: RebirthCause): void;
  event(kind: HostEvent, count: number): void;
}

/** A mapped metric of a birth: where its value goes (-1: never, its type is not a number) and the type its values must have. */
interface Slot {
  readonly channel: number;
  readonly datatype: number;
}

/** What a birth declared: mapped metrics by alias and by name, every other alias in a sorted array (8 bytes each). */
interface MetricTable {
  readonly byAlias: Map<number, Slot>;
  readonly byName: Map<string, Slot>;
  readonly unmappedAliases: Float64Array;
  /** Metrics declared, charged to limits.maxMetrics. */
  readonly size: number;
  /** Some mapped metric is a number: the stream can carry readings (and so can go stale). */
  readonly readable: boolean;
}

interface DeviceState {
  readonly streamId: string;
  readonly metrics: MetricTable;
}

interface NodeState extends EdgeNodeRef {
  readonly streamId: string;
  /** bdSeq of the current session's NBIRTH; -1 before any. */
  bdSeq: number;
  /** A birth of this session is known and no death came since. */
  alive: boolean;
  /** Alive, and no seq was missed since the birth (else data waits for a rebirth). */
  inSync: boolean;
  /** Last seq seen. */
  seq: number;
  metrics: MetricTable | null;
  readonly devices: Map<string, DeviceState>;
  /** Wall-clock ms of the last rebirth request; -Infinity when none. */
  lastRebirthAt: number;
}

type Verb = 'NBIRTH' | 'NDEATH' | 'NDATA' | 'NCMD' | 'DBIRTH' | 'DDEATH' | 'DDATA' | 'DCMD';
const NODE_VERBS = new Set<string>(['NBIRTH', 'NDEATH', 'NDATA', 'NCMD']);
const DEVICE_VERBS = new Set<string>(['DBIRTH', 'DDEATH', 'DDATA', 'DCMD']);

const FLOAT32_MAX = 3.4028234663852886e38;
const MAX_DATE_MS = 8.64e15;
const NO_ALIASES = new Float64Array(0);

export class SparkplugHost {
  private readonly nodes = new Map<string, NodeState>();
  private readonly channelOf = new Map<string, number>();
  private devices = 0;
  private metricsHeld = 0;
  private tokens: number;
  private tokensAt = Number.NEGATIVE_INFINITY;

  /**
   * `channels` are the model's channel names in manifest order; every channel named in
   * config.channels must be one of them (startup error otherwise, naming the key).
   */
  constructor(
    private readonly config: SparkplugConfig,
    channels: readonly string[],
    private readonly out: HostOutputs,
  ) {
    for (const [metric, channel] of Object.entries(config.channels)) {
      const index = channels.indexOf(channel);
      if (index < 0) {
        throw new Error(
          `sparkplug.channels["${metric}"]: "${channel}" is not a channel of the model (${channels.join(', ')}) — fix: name one of the model's channels`,
        );
      }
      this.channelOf.set(metric, index);
    }
    this.tokens = config.rebirth.maxPerSecond;
  }

  /** Edge nodes tracked (alive or not). */
  get edgeNodeCount(): number {
    return this.nodes.size;
  }

  /** Devices tracked on all edge nodes. */
  get deviceCount(): number {
    return this.devices;
  }

  /** Metrics known from births, against limits.maxMetrics. */
  get metricCount(): number {
    return this.metricsHeld;
  }

  /** Is this edge node in a session the host can read data of? */
  isInSync(group: string, edgeNode: string): boolean {
    return this.nodes.get(`${group}/${edgeNode}`)?.inSync ?? false;
  }

  /**
   * Takes one message of the Sparkplug namespace (not STATE). `now` is the wall clock (epoch ms) for
   * timestamps and rate limits, `receivedAt` the monotonic receive time the readings carry.
   */
  handle(topic: string, payload: Uint8Array, now: number, receivedAt: number): void {
    const levels = topic.split('/');
    const verb = levels[2] as Verb | undefined;
    const group = levels[1];
    const edgeNode = levels[3];
    if (levels[0] !== 'spBv1.0' || verb === undefined || group === undefined || edgeNode === undefined) {
      this.out.rejected('bad_topic', `not a Sparkplug B topic: ${topic.slice(0, 64)}`);
      return;
    }
    const device = levels[4];
    if (levels.length === 4 ? !NODE_VERBS.has(verb) : levels.length !== 5 || !DEVICE_VERBS.has(verb)) {
      this.out.rejected('bad_topic', `no Sparkplug verb ${verb.slice(0, 16)} with ${levels.length} topic levels`);
      return;
    }
    if (verb === 'NCMD' || verb === 'DCMD') {
      // Commands go to edge nodes; the host hears its own rebirth requests and other hosts' commands.
      this.out.event('command_ignored', 1);
      return;
    }
    const nodeStreamId = `${group}/${edgeNode}`;
    const streamId = device === undefined ? nodeStreamId : `${nodeStreamId}/${device}`;
    const problem = streamIdProblem(streamId, this.config.limits.maxStreamIdBytes);
    if (problem !== null) {
      this.out.rejected('bad_stream_id', problem.replace('ingest.maxStreamIdBytes', 'sparkplug.limits.maxStreamIdBytes'));
      return;
    }
    if (payload.byteLength > this.config.limits.maxPayloadBytes) {
      this.out.rejected('oversized', `${verb} of ${payload.byteLength} bytes > sparkplug.limits.maxPayloadBytes ${this.config.limits.maxPayloadBytes}`);
      return;
    }
    const decoded = decodePayload(payload);
    if (!decoded.ok) {
      this.out.rejected('malformed', `${verb} from ${streamId}: ${decoded.detail}`);
      return;
    }
    const message = decoded.payload;
    if (verb === 'NDEATH') {
      this.nodeDeath(nodeStreamId, message);
      return;
    }
    const seq = has(message, 'seq') ? uint64(message.seq) : -1;
    if (seq < 0 || seq > 255) {
      this.out.rejected('invalid_payload', `${verb} from ${streamId} has no seq in 0..255`);
      return;
    }
    const node = this.nodeFor(group, edgeNode, nodeStreamId);
    if (node === null) return;
    if (verb === 'NBIRTH') {
      this.nodeBirth(node, message, seq, now, receivedAt);
      return;
    }
    if (!node.alive || !node.inSync) {
      this.out.rejected('no_birth', `${verb} from ${streamId}: no valid NBIRTH (never born, dead, or awaiting a rebirth)`);
      this.requestRebirth(node, 'no_birth', now);
      return;
    }
    if (seq !== ((node.seq + 1) & 0xff)) {
      this.out.rejected('seq_gap', `${verb} from ${streamId}: seq ${seq}, expected ${(node.seq + 1) & 0xff}`);
      node.inSync = false;
      this.requestRebirth(node, 'seq_gap', now);
      return;
    }
    node.seq = seq;
    // Checked after the seq: the message came in order, only its content is refused (no rebirth needed for it).
    if (this.overLimit(verb, streamId, message)) return;
    const deviceId = device as string;
    switch (verb) {
      case 'NDATA':
        if (node.metrics !== null) this.data(node, node.metrics, nodeStreamId, message, now, receivedAt);
        return;
      case 'DBIRTH':
        this.deviceBirth(node, deviceId, streamId, message, now, receivedAt);
        return;
      case 'DDEATH':
        this.deviceDeath(node, deviceId, streamId);
        return;
      case 'DDATA': {
        const state = node.devices.get(deviceId);
        if (state === undefined) {
          this.out.rejected('no_birth', `DDATA from ${streamId} before its DBIRTH`);
          this.requestRebirth(node, 'no_birth', now);
          return;
        }
        this.data(node, state.metrics, streamId, message, now, receivedAt);
        return;
      }
    }
  }

  /**
   * The broker connection was lost: every stream of a live edge node is stale (its deaths may never
   * reach us), and each edge node must be born again before its data counts.
   */
  connectionLost(): void {
    for (const node of this.nodes.values()) {
      if (!node.alive) continue;
      this.endSession(node);
    }
  }

  /** The node's state, created for a node not seen before (evicting the oldest dead one when full); null when full of live ones. */
  private nodeFor(group: string, edgeNode: string, streamId: string): NodeState | null {
    const known = this.nodes.get(streamId);
    if (known !== undefined) return known;
    if (this.nodes.size >= this.config.limits.maxEdgeNodes && !this.evictDeadNode()) {
      this.out.rejected('node_limit', `edge node ${streamId} beyond sparkplug.limits.maxEdgeNodes ${this.config.limits.maxEdgeNodes}`);
      return null;
    }
    const node: NodeState = {
      group,
      edgeNode,
      streamId,
      bdSeq: -1,
      alive: false,
      inSync: false,
      seq: -1,
      metrics: null,
      devices: new Map(),
      lastRebirthAt: Number.NEGATIVE_INFINITY,
    };
    this.nodes.set(streamId, node);
    return node;
  }

  /** Drops the longest-known edge node that is not alive (insertion order); false when every one is alive. */
  private evictDeadNode(): boolean {
    for (const [key, node] of this.nodes) {
      if (node.alive) continue;
      this.clearTables(node);
      this.nodes.delete(key);
      return true;
    }
    return false;
  }

  private overLimit(verb: Verb, streamId: string, message: Payload): boolean {
    if (message.metrics.length <= this.config.limits.maxMetricsPerMessage) return false;
    this.out.rejected('metric_limit', `${verb} from ${streamId} has ${message.metrics.length} metrics > sparkplug.limits.maxMetricsPerMessage`);
    return true;
  }

  private nodeBirth(node: NodeState, message: Payload, seq: number, now: number, receivedAt: number): void {
    if (this.overLimit('NBIRTH', node.streamId, message)) {
      this.clearTables(node);
      node.alive = false;
      node.inSync = false;
      return;
    }
    let bdSeq = -1;
    for (const metric of message.metrics) {
      if (has(metric, 'name') && metric.name === 'bdSeq') {
        bdSeq = metric.value === 'longValue' ? uint64(metric.longValue) : metric.value === 'intValue' ? metric.intValue : -1;
        break;
      }
    }
    if (bdSeq < 0 || bdSeq > 255) {
      this.out.rejected('invalid_payload', `NBIRTH from ${node.streamId} has no bdSeq metric in 0..255`);
      return;
    }
    // A new session (or a rebirth of this one) replaces everything known: its DBIRTHs follow.
    this.clearTables(node);
    const table = this.table(node.streamId, 'NBIRTH', message);
    if (table === null) {
      node.alive = false;
      node.inSync = false;
      return;
    }
    node.metrics = table;
    node.bdSeq = bdSeq;
    node.seq = seq;
    node.alive = true;
    node.inSync = true;
    this.out.event('nbirth', 1);
    this.data(node, table, node.streamId, message, now, receivedAt);
  }

  private nodeDeath(streamId: string, message: Payload): void {
    if (this.overLimit('NDEATH', streamId, message)) return;
    const node = this.nodes.get(streamId);
    let bdSeq = -1;
    for (const metric of message.metrics) {
      if (has(metric, 'name') && metric.name === 'bdSeq') {
        bdSeq = metric.value === 'longValue' ? uint64(metric.longValue) : metric.value === 'intValue' ? metric.intValue : -1;
        break;
      }
    }
    if (bdSeq < 0 || bdSeq > 255) {
      this.out.rejected('invalid_payload', `NDEATH from ${streamId} has no bdSeq metric in 0..255`);
      return;
    }
    // The will of an earlier session can arrive after the next NBIRTH: only the current session's bdSeq ends it.
    if (node === undefined || !node.alive || node.bdSeq !== bdSeq) {
      this.out.rejected('stale_death', `NDEATH from ${streamId} with bdSeq ${bdSeq}, session ${node?.alive ? node.bdSeq : 'none'}`);
      return;
    }
    this.out.event('ndeath', 1);
    this.endSession(node);
  }

  /** Marks the node and its devices stale (the streams that could carry readings) and forgets their births. */
  private endSession(node: NodeState): void {
    if (node.metrics?.readable) this.out.stale(node.streamId);
    for (const device of node.devices.values()) {
      if (device.metrics.readable) this.out.stale(device.streamId);
    }
    this.clearTables(node);
    node.alive = false;
    node.inSync = false;
  }

  private clearTables(node: NodeState): void {
    if (node.metrics !== null) this.metricsHeld -= node.metrics.size;
    node.metrics = null;
    for (const device of node.devices.values()) this.metricsHeld -= device.metrics.size;
    this.devices -= node.devices.size;
    node.devices.clear();
  }

  private deviceBirth(node: NodeState, deviceId: string, streamId: string, message: Payload, now: number, receivedAt: number): void {
    const previous = node.devices.get(deviceId);
    if (previous === undefined && this.devices >= this.config.limits.maxDevices) {
      this.out.rejected('device_limit', `device ${streamId} beyond sparkplug.limits.maxDevices ${this.config.limits.maxDevices}`);
      return;
    }
    if (previous !== undefined) {
      this.metricsHeld -= previous.metrics.size;
      node.devices.delete(deviceId);
      this.devices--;
    }
    const table = this.table(streamId, 'DBIRTH', message);
    if (table === null) return;
    node.devices.set(deviceId, { streamId, metrics: table });
    this.devices++;
    this.out.event('dbirth', 1);
    this.data(node, table, streamId, message, now, receivedAt);
  }

  private deviceDeath(node: NodeState, deviceId: string, streamId: string): void {
    const device = node.devices.get(deviceId);
    if (device === undefined) {
      this.out.rejected('stale_death', `DDEATH from ${streamId}, which has no DBIRTH in this session`);
      return;
    }
    this.out.event('ddeath', 1);
    if (device.metrics.readable) this.out.stale(streamId);
    this.metricsHeld -= device.metrics.size;
    node.devices.delete(deviceId);
    this.devices--;
  }

  /** The metric table of a birth, charged to limits.maxMetrics; null (rejected) when it breaks a rule or the limit. */
  private table(streamId: string, verb: 'NBIRTH' | 'DBIRTH', message: Payload): MetricTable | null {
    const metrics = message.metrics;
    if (this.metricsHeld + metrics.length > this.config.limits.maxMetrics) {
      this.out.rejected('metric_limit', `${verb} from ${streamId}: ${metrics.length} more metrics would exceed sparkplug.limits.maxMetrics ${this.config.limits.maxMetrics}`);
      return null;
    }
    const byAlias = new Map<number, Slot>();
    const byName = new Map<string, Slot>();
    const unmapped: number[] = [];
    let readable = false;
    for (const metric of metrics) {
      if (!has(metric, 'name')) {
        this.out.rejected('invalid_payload', `${verb} from ${streamId} has a metric without a name`);
        return null;
      }
      const alias = has(metric, 'alias') ? uint64(metric.alias) : null;
      if (alias === -1) {
        this.out.rejected('invalid_payload', `${verb} from ${streamId}: alias of "${metric.name.slice(0, 64)}" is beyond 2^53`);
        return null;
      }
      const channel = this.channelOf.get(metric.name);
      if (channel === undefined) {
        if (alias !== null) unmapped.push(alias);
        continue;
      }
      const datatype = metric.datatype;
      let slot: Slot;
      if (isNumericType(datatype)) {
        slot = { channel, datatype };
        readable = true;
      } else {
        // The birth stands; only this metric can never become a reading.
        this.out.rejected('wrong_type', `${verb} from ${streamId}: "${metric.name.slice(0, 64)}" has data type ${datatype}, not a number`);
        slot = { channel: -1, datatype };
      }
      if (alias !== null) {
        if (byAlias.has(alias)) {
          this.out.rejected('invalid_payload', `${verb} from ${streamId}: alias ${alias} is declared twice`);
          return null;
        }
        byAlias.set(alias, slot);
      }
      byName.set(metric.name, slot);
    }
    let unmappedAliases = NO_ALIASES;
    if (unmapped.length > 0) {
      unmappedAliases = Float64Array.from(unmapped).sort();
      for (let i = 1; i < unmappedAliases.length; i++) {
        if (unmappedAliases[i] === unmappedAliases[i - 1]) {
          this.out.rejected('invalid_payload', `${verb} from ${streamId}: alias ${unmappedAliases[i]} is declared twice`);
          return null;
        }
      }
      for (const alias of byAlias.keys()) {
        if (includes(unmappedAliases, alias)) {
          this.out.rejected('invalid_payload', `${verb} from ${streamId}: alias ${alias} is declared twice`);
          return null;
        }
      }
    }
    this.metricsHeld += metrics.length;
    return { byAlias, byName, unmappedAliases, size: metrics.length, readable };
  }

  /** Readings from the mapped metrics of a birth or data message; each bad metric is rejected on its own. */
  private data(node: NodeState, table: MetricTable, streamId: string, message: Payload, now: number, receivedAt: number): void {
    const payloadTs = has(message, 'timestamp') ? uint64(message.timestamp) : Number.NaN;
    let unmapped = 0;
    let unknown = 0;
    for (const metric of message.metrics) {
      let slot: Slot | undefined;
      if (has(metric, 'alias')) {
        const alias = uint64(metric.alias);
        slot = table.byAlias.get(alias);
        if (slot === undefined) {
          if (alias >= 0 && includes(table.unmappedAliases, alias)) {
            unmapped++;
          } else {
            unknown++;
            this.out.rejected('unknown_alias', `${streamId}: alias ${alias < 0 ? '>2^53' : alias} is in no birth`);
          }
          continue;
        }
      } else if (has(metric, 'name')) {
        if (!this.channelOf.has(metric.name)) {
          unmapped++;
          continue;
        }
        slot = table.byName.get(metric.name);
        if (slot === undefined) {
          unknown++;
          this.out.rejected('unknown_alias', `${streamId}: metric "${metric.name.slice(0, 64)}" is in no birth`);
          continue;
        }
      } else {
        this.out.rejected('invalid_payload', `${streamId}: a metric has neither alias nor name`);
        continue;
      }
      if (slot.channel < 0) unmapped++;
      else this.metric(metric, slot, streamId, payloadTs, now, receivedAt);
    }
    if (unmapped > 0) this.out.event('unmapped_metric', unmapped);
    if (unknown > 0) this.requestRebirth(node, 'unknown_alias', now);
  }

  private metric(metric: Metric, slot: Slot, streamId: string, payloadTs: number, now: number, receivedAt: number): void {
    if (has(metric, 'datatype') && metric.datatype !== slot.datatype) {
      this.out.rejected('wrong_type', `${streamId}: data type ${metric.datatype}, birth said ${slot.datatype}`);
      return;
    }
    if (metric.isNull) {
      this.out.rejected('null_value', `${streamId}: metric is null`);
      return;
    }
    if (metric.isHistorical && this.config.historical === 'drop') {
      this.out.rejected('historical', `${streamId}: historical metric (sparkplug.historical is drop)`);
      return;
    }
    const value = numericValue(metric, slot.datatype);
    if (value === undefined) {
      this.out.rejected('wrong_type', `${streamId}: value is not the ${typeName(slot.datatype)} its birth declared`);
      return;
    }
    if (!Number.isFinite(value) || value > FLOAT32_MAX || value < -FLOAT32_MAX) {
      this.out.rejected('non_finite', `${streamId}: value is not a finite float32`);
      return;
    }
    let ts = has(metric, 'timestamp') ? uint64(metric.timestamp) : payloadTs;
    const tsFromPayload = !Number.isNaN(ts);
    if (!tsFromPayload) ts = now;
    if (ts < 0 || ts > MAX_DATE_MS || ts > now + this.config.limits.maxFutureSkewMs) {
      this.out.rejected('bad_timestamp', `${streamId}: timestamp out of range or too far in the future`);
      return;
    }
    this.out.reading({ streamId, ts, tsFromPayload, receivedAt, channel: slot.channel, value, values: null });
  }

  /** Asks for a rebirth unless this node was asked within rebirth.minIntervalMs or the global budget is spent. */
  private requestRebirth(node: NodeState, cause: RebirthCause, now: number): void {
    const { minIntervalMs, maxPerSecond } = this.config.rebirth;
    if (now - node.lastRebirthAt < minIntervalMs) {
      this.out.event('rebirth_held', 1);
      return;
    }
    this.tokens = Math.min(maxPerSecond, this.tokens + ((now - this.tokensAt) * maxPerSecond) / 1000);
    this.tokensAt = now;
    if (!(this.tokens >= 1)) {
      this.out.event('rebirth_held', 1);
      return;
    }
    this.tokens -= 1;
    node.lastRebirthAt = now;
    this.out.rebirth(node, cause);
  }
}

/** Binary search in a sorted array. */
function includes(sorted: Float64Array, value: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid] as number;
    if (v === value) return true;
    if (v < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

function typeName(datatype: number): string {
  for (const [name, value] of Object.entries(DataType)) if (value === datatype) return name;
  return `type ${datatype}`;
}
