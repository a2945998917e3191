/**
 * The Sparkplug B ingest stage: a primary host application on an MQTT client of its own. It keeps the
 * host's STATE, feeds Sparkplug messages to the host state machine, offers its readings to the
 * route's pipeline and publishes the rebirth requests the host asks for.
 */
import type { IClientOptions, MqttClient, Packet } from 'mqtt';
import { beforeDeadline, type Stage } from '../../lifecycle/stage.js';
import type { ReadingSink } from '../mqtt-ingest.js';
import type { Reading } from '../reading.js';
import { sparkplugFilters, type SparkplugConfig } from './config.js';
import { SparkplugHost, type EdgeNodeRef, type HostEvent, type HostOutputs, type RebirthCause, type SparkplugRejectReason } from './host.js';
import { DataType, encodePayload } from './payload.js';

/** Where the readings go: the route's pipeline and its model's channel names (manifest order). */
export interface SparkplugTarget {
  readonly sink: ReadingSink;
  readonly channels: readonly string[];
}

/** What the stage counts: the host's events, plus messages taken, readings offered, rebirths sent, STATE births published. */
export type SparkplugCountedEvent = HostEvent | 'received' | 'reading' | 'rebirth_requested' | 'state_published';

/** Every counted event, so that each label value is exported at 0 from the start. */
export const sparkplugCountedEvents = Object.keys({
  nbirth: true,
  dbirth: true,
  ndeath: true,
  ddeath: true,
  unmapped_metric: true,
  rebirth_held: true,
  command_ignored: true,
  received: true,
  reading: true,
  rebirth_requested: true,
  state_published: true,
} satisfies Record<SparkplugCountedEvent, true>) as SparkplugCountedEvent[];

export interface SparkplugCounters {
  inc(event: SparkplugCountedEvent, count: number): void;
}

export interface SparkplugHooks {
  /** A message or metric turned away (counted by reason; log at a limited rate). */
  onRejected(reason: SparkplugRejectReason, detail: string): void;
  /** The stream's edge node or device died, or the broker connection was lost: a data gap, not an anomaly. */
  onStale(streamId: string): void;
  /** An NCMD Node Control/Rebirth went out to this edge node. */
  onRebirthRequested(node: EdgeNodeRef, cause: RebirthCause): void;
  counters: SparkplugCounters;
  /** The broker refused a subscription (e.g. an ACL): those edge nodes are never heard. */
  onSubscribeFailed?(err: Error): void;
  /** A bug caught at the door: the message is dropped rather than ending the process. */
  onError?(err: Error): void;
}

/** spBv1.0/STATE/<hostId>: where the host's birth and death go. */
export function stateTopic(hostId: string): string {
  return `spBv1.0/STATE/${hostId}`;
}

function statePayload(online: boolean, timestamp: number): Buffer {
  return Buffer.from(JSON.stringify({ online, timestamp }));
}

/**
 * Options the stage's MQTT client must be created with (merge them into the broker options): a clean
 * session (Clean Start with session expiry 0 on MQTT 5), the STATE death as the will (QoS 1, retained),
 * and no resubscribe by mqtt.js: the stage subscribes on each connection and waits for the SUBACK
 * before its STATE birth, as the spec orders.
 */
export function sparkplugClientOptions(config: Pick<SparkplugConfig, 'hostId'>, now: number = Date.now()): Pick<IClientOptions, 'clean' | 'will' | 'resubscribe'> {
  return { clean: true, resubscribe: false, will: { topic: stateTopic(config.hostId), payload: statePayload(false, now), qos: 1, retain: true } };
}

export class SparkplugIngest implements Stage {
  readonly name = 'sparkplug';
  readonly host: SparkplugHost;
  private readonly topic: string;
  private accepting = false;
  /** The timestamp of the will in the CONNECT of the current connection; the STATE birth repeats it. */
  private stateTimestamp = 0;
  /** Acks still owed for the message in hand (+1 while the host is at it); mqtt.js hands over one message at a time. */
  private owed = 0;
  private done: (() => void) | null = null;
  private readonly ack = (): void => {
    if (--this.owed === 0) {
      const done = this.done;
      this.done = null;
      done?.();
    }
  };
  private readonly onConnect = (): void => this.subscribeAndBirth();
  private readonly onReconnect = (): void => this.renewWill();
  private readonly onClose = (): void => this.host.connectionLost();

  constructor(
    private readonly client: MqttClient,
    private readonly config: SparkplugConfig,
    private readonly target: SparkplugTarget,
    private readonly hooks: SparkplugHooks,
  ) {
    this.topic = stateTopic(config.hostId);
    const outputs: HostOutputs = {
      reading: (reading: Reading) => {
        this.owed++;
        hooks.counters.inc('reading', 1);
        target.sink.offer(reading, 0, this.ack);
      },
      rejected: (reason, detail) => hooks.onRejected(reason, detail),
      stale: (streamId) => hooks.onStale(streamId),
      rebirth: (node, cause) => this.requestRebirth(node, cause),
      event: (kind, count) => hooks.counters.inc(kind, count),
    };
    this.host = new SparkplugHost(config, target.channels, outputs);
  }

  /** Subscribes and publishes the STATE birth on this and every later connection; fails fast when the client lacks the STATE will. */
  async start(): Promise<void> {
    const will = this.client.options.will;
    const timestamp = will?.topic === this.topic ? stateTimestampOf(will.payload) : null;
    if (will === undefined || timestamp === null || will.qos !== 1 || !will.retain) {
      throw new Error(
        `sparkplug: the MQTT client has no STATE will on ${this.topic} (QoS 1, retained, {"online":false,"timestamp":…}) — fix: create it with sparkplugClientOptions(config.sparkplug)`,
      );
    }
    this.stateTimestamp = timestamp;
    this.accepting = true;
    this.client.handleMessage = (packet, done) => this.onMessage(packet, done);
    this.client.on('connect', this.onConnect);
    this.client.on('reconnect', this.onReconnect);
    this.client.on('close', this.onClose);
    if (this.client.connected) this.subscribeAndBirth();
  }

  /**
   * Stops intake and publishes the STATE death (retained, QoS 1) as the spec asks of an intentional
   * disconnect; the caller ends the client afterwards. Waits for the broker's PUBACK until the deadline.
   */
  async stop(deadline: AbortSignal): Promise<void> {
    if (!this.accepting) return;
    this.accepting = false;
    this.client.off('connect', this.onConnect);
    this.client.off('reconnect', this.onReconnect);
    this.client.off('close', this.onClose);
    if (!this.client.connected) return;
    const death = this.client.publishAsync(this.topic, statePayload(false, Date.now()), { qos: 1, retain: true }).catch(() => undefined);
    await beforeDeadline(death, deadline);
  }

  private subscribeAndBirth(): void {
    const filters = sparkplugFilters(this.config);
    const request: Record<string, { qos: 0 | 1 }> = { [this.topic]: { qos: 1 } };
    for (const filter of filters) request[filter] = { qos: 1 };
    // The spec orders it: subscriptions (Sparkplug namespace and own STATE) first, then the STATE birth.
    this.client.subscribe(request, (err) => {
      if (err) {
        if (typeof (err as { code?: unknown }).code === 'number') this.hooks.onSubscribeFailed?.(err);
        // Otherwise the connection went away first: the next CONNACK subscribes again.
        return;
      }
      this.publishBirth();
    });
  }

  private publishBirth(): void {
    if (!this.accepting) return;
    this.client.publish(this.topic, statePayload(true, this.stateTimestamp), { qos: 1, retain: true }, (err) => {
      if (!err) this.hooks.counters.inc('state_published', 1);
    });
  }

  /** Each connection gets a newer will timestamp, so edge nodes can tell a late will of an old session from the current one. */
  private renewWill(): void {
    const will = this.client.options.will;
    if (will === undefined) return;
    this.stateTimestamp = Math.max(Date.now(), this.stateTimestamp + 1);
    will.payload = statePayload(false, this.stateTimestamp);
  }

  private requestRebirth(node: EdgeNodeRef, cause: RebirthCause): void {
    const now = Date.now();
    const payload = encodePayload({
      timestamp: now,
      metrics: [{ name: 'Node Control/Rebirth', timestamp: now, datatype: DataType.Boolean, booleanValue: true }],
    });
    this.client.publish(`spBv1.0/${node.group}/NCMD/${node.edgeNode}`, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos: 0, retain: false });
    this.hooks.counters.inc('rebirth_requested', 1);
    this.hooks.onRebirthRequested({ group: node.group, edgeNode: node.edgeNode }, cause);
  }

  private onMessage(packet: Packet, done: (err?: Error) => void): void {
    if (!this.accepting || packet.cmd !== 'publish') {
      done();
      return;
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (packet.topic === this.topic) {
      this.onState(payload);
      done();
      return;
    }
    this.hooks.counters.inc('received', 1);
    this.owed = 1;
    this.done = done;
    try {
      this.host.handle(packet.topic, payload, Date.now(), performance.now());
    } catch (err) {
      // A bug, not bad input: count it and let the message go, so one message cannot stop intake.
      this.hooks.onError?.(err instanceof Error ? err : new Error(String(err)));
    }
    this.ack();
  }

  /** Another client (or our own old will) says this host is offline: say again that it is online. */
  private onState(payload: Buffer | Uint8Array): void {
    let online: unknown;
    try {
      online = (JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as { online?: unknown } | null)?.online;
    } catch {
      return;
    }
    if (online === false) this.publishBirth();
  }
}

/** The timestamp of a STATE payload ({"online":…,"timestamp":n}), or null when it has none. */
function stateTimestampOf(payload: Buffer | string | undefined): number | null {
  if (payload === undefined) return null;
  try {
    const timestamp = (JSON.parse(payload.toString()) as { timestamp?: unknown } | null)?.timestamp;
    return typeof timestamp === 'number' && Number.isFinite(timestamp) ? timestamp : null;
  } catch {
    return null;
  }
}
