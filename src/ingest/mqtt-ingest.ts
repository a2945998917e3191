/** The ingest stage: subscribes to the configured topics and turns each MQTT message into a reading or a rejection. */
import type { MqttClient } from 'mqtt';
import type { PayloadParser } from './payload.js';
import type { StreamRateLimiter } from './rate-limit.js';
import type { Reading, RejectReason } from './reading.js';
import type { TopicRule } from './topic.js';

type PublishPacket = Parameters<MqttClient['handleMessage']>[0];

export interface ReadingSink {
  /**
   * Takes a reading. `ack` must be called once it is safely queued (or deliberately dropped at QoS 0):
   * for QoS 1 that sends the PUBACK, and mqtt.js reads no further message until then — that is the backpressure.
   */
  offer(reading: Reading, qos: 0 | 1, ack: () => void): void;
}

export interface IngestHooks {
  onReceived(rule: TopicRule | null): void;
  onRejected(reason: RejectReason, detail: string, topic: string): void;
  /** A message arrived after intake stopped: not acknowledged (QoS 1 comes again; QoS 0 is lost). */
  onRefused?(qos: 0 | 1): void;
}

export class MqttIngest {
  private accepting = false;

  constructor(
    private readonly client: MqttClient,
    private readonly rules: readonly TopicRule[],
    private readonly parser: PayloadParser,
    private readonly sink: ReadingSink,
    private readonly hooks: IngestHooks,
    private readonly limiter: StreamRateLimiter | null = null,
  ) {}

  /** Installs the message handler and subscribes (again on every reconnect, via mqtt.js resubscribe). */
  start(): void {
    this.accepting = true;
    this.client.handleMessage = (packet, done) => this.onMessage(packet, done);
    const subscriptions = Object.fromEntries(this.rules.map((r) => [r.filter, { qos: r.qos }]));
    this.client.subscribe(subscriptions, (err) => {
      if (err) this.hooks.onRejected('no_rule', `subscribe failed: ${err.message}`, this.rules.map((r) => r.filter).join(','));
    });
  }

  /**
   * Stops intake: later messages are not acknowledged (handing mqtt.js an error skips the PUBACK but
   * keeps it reading, so acknowledgements of our own publishes still arrive), and the broker
   * delivers them again to the next run of this persistent session. Subscriptions are kept for the
   * same reason.
   */
  stopIntake(): void {
    this.accepting = false;
  }

  private onMessage(packet: PublishPacket, done: (err?: Error) => void): void {
    if (!this.accepting) {
      this.hooks.onRefused?.(packet.qos === 0 ? 0 : 1);
      done(new Error('intake stopped'));
      return;
    }
    const topic = packet.topic;
    const qos: 0 | 1 = packet.qos === 0 ? 0 : 1;
    let rule: TopicRule | null = null;
    let match = null;
    for (const candidate of this.rules) {
      match = candidate.match(topic);
      if (match !== null) {
        rule = candidate;
        break;
      }
    }
    this.hooks.onReceived(rule);
    if (rule === null || match === null) {
      this.hooks.onRejected('no_rule', 'topic matches no subscription rule', topic);
      done();
      return;
    }
    const now = Date.now();
    if (this.limiter !== null && !this.limiter.allow(match.streamId, now)) {
      this.hooks.onRejected('rate_limited', `stream ${match.streamId.slice(0, 64)} exceeds ingest.maxReadingsPerSecondPerStream`, topic);
      done();
      return;
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const result = this.parser.parse(rule.format, match.streamId, match.channel, payload, now, performance.now());
    if (!result.ok) {
      this.hooks.onRejected(result.reason, result.detail, topic);
      done();
      return;
    }
    this.sink.offer(result.reading, qos, done);
  }
}
