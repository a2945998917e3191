/**
 * The ingest stage: takes each MQTT message from its source (an MQTT client subscription, or the
 * embedded broker in-process) and turns it into a reading or a rejection.
 */
import type { MqttClient } from 'mqtt';
import type { PayloadParser } from './payload.js';
import type { StreamRateLimiter } from './rate-limit.js';
import type { Reading, RejectReason } from './reading.js';
import { fitsBytes, streamIdProblem } from './stream-id.js';
import type { Subscription } from './topic.js';
import type { Stage } from '../lifecycle/stage.js';

/** One inbound message; `done` must be called once it is taken (the source waits for it: backpressure). */
export type MessageHandler = (topic: string, payload: Uint8Array | string, qos: number, done: (err?: Error) => void) => void;

/** What a source reports about its subscriptions. */
export interface SubscriptionEvents {
  /** The broker answered the subscriptions (SUBACK): from now on it routes telemetry to this session. */
  onSubscribed(): void;
  /** The broker refused a subscription (or it could not be sent). */
  onError(err: Error): void;
}

/** Where messages come from. */
export interface MessageSource {
  /** Subscribes to every filter and hands each message to `handler`, one at a time. */
  listen(filters: ReadonlyArray<{ filter: string; qos: 0 | 1 }>, handler: MessageHandler, events: SubscriptionEvents): void;
}

/**
 * Messages through an MQTT client's subscription. mqtt.js reads no further message until `done`
 * (QoS 1: the PUBACK goes with it); handing it an error skips the PUBACK but keeps it reading.
 *
 * Subscribes on every CONNACK until the broker has granted the filters, and again whenever the broker
 * lost the session (sessionPresent false). mqtt.js's own resubscribe is off (connection.ts): it fails a
 * SUBSCRIBE queued before a refused CONNACK with "Connection closed" and never sends it again, so a
 * daemon that started while the broker refused its credentials would never subscribe.
 */
export function clientSource(client: MqttClient): MessageSource {
  return {
    listen(filters, handler, events) {
      client.handleMessage = (packet, done) => handler(packet.topic, packet.payload, packet.qos, done);
      const request = Object.fromEntries(filters.map((f) => [f.filter, { qos: f.qos }]));
      let granted = false;
      const subscribe = (): void => {
        client.subscribe(request, (err) => {
          if (!err) {
            granted = true;
            events.onSubscribed();
          } else if (typeof (err as { code?: unknown }).code === 'number') {
            // A SUBACK reason code (e.g. not authorized): the broker answered, and asking again will not change it.
            events.onError(err);
          }
          // Otherwise the connection went away first: the next CONNACK subscribes again.
        });
      };
      client.on('connect', (connack) => {
        if (!granted || !connack.sessionPresent) subscribe();
      });
      if (client.connected) subscribe();
    },
  };
}

/** A broker in this process that can hand messages to a function (the embedded broker). */
export interface InProcessBroker {
  subscribe(filter: string, deliver: (packet: { topic: string; payload: Uint8Array | string; qos: number }, done: () => void) => void): Promise<void>;
}

/**
 * Messages straight from the embedded broker's router: no loopback connection, no second encode and
 * parse. The broker hands over a whole socket read at a time and reads no more from that publisher
 * until each of them is done (backpressure); the pipeline takes them one at a time, in order. What the
 * broker holds is in this process either way, so this gives up no durability.
 */
export function inProcessSource(broker: InProcessBroker): MessageSource {
  return {
    listen(filters, handler, events) {
      type Delivery = { packet: { topic: string; payload: Uint8Array | string; qos: number }; done: () => void };
      let pending: Delivery[] = [];
      let head = 0;
      let busy = false;
      const drain = (): void => {
        while (!busy && head < pending.length) {
          const { packet, done } = pending[head++] as Delivery;
          if (head === pending.length) {
            pending = [];
            head = 0;
          }
          busy = true;
          let inline = true;
          handler(packet.topic, packet.payload, packet.qos, () => {
            busy = false;
            done();
            if (!inline) drain();
          });
          inline = false;
        }
      };
      Promise.all(
        filters.map(({ filter }) =>
          broker.subscribe(filter, (packet, done) => {
            pending.push({ packet, done });
            drain();
          }),
        ),
      ).then(
        () => events.onSubscribed(),
        (err: unknown) => events.onError(err instanceof Error ? err : new Error(String(err))),
      );
    },
  };
}

export interface ReadingSink {
  /**
   * Takes a reading. `ack` must be called once it is safely queued (or deliberately dropped at QoS 0):
   * for QoS 1 that sends the PUBACK, and mqtt.js reads no further message until then — that is the backpressure.
   */
  offer(reading: Reading, qos: 0 | 1, ack: () => void): void;
  /** A reading of this stream was turned away before it was offered (it counts against the stream's input quality). */
  rejected?(streamId: string, reason: RejectReason): void;
}

/** Where a subscription's messages go: parsed with its model's channels, offered to its route's pipeline. */
export interface IngestTarget {
  readonly parser: PayloadParser;
  readonly sink: ReadingSink;
}

export interface IngestHooks {
  onReceived(subscription: Subscription | null): void;
  onRejected(reason: RejectReason, detail: string, topic: string): void;
  /** A message arrived after intake stopped: not acknowledged (QoS 1 comes again; QoS 0 is lost). */
  onRefused?(qos: 0 | 1): void;
  /** A QoS 1 reading over its stream's rate waits (its acknowledgement, and so intake, is held). */
  onRateLimitWait?(): void;
  /** A bug caught at the door: the message is acknowledged and dropped rather than ending the process. */
  onError?(err: Error): void;
  /** The broker granted every subscription: telemetry published from now on reaches this daemon. */
  onSubscribed?(): void;
  /** The broker refused a subscription (e.g. an ACL): that subscription's telemetry never arrives. */
  onSubscribeFailed(err: Error): void;
}

export interface IngestLimits {
  /** Longer topics are rejected (topic_too_long) before any subscription sees them. */
  maxTopicBytes: number;
  /** Longer stream ids, or ones with control characters, are rejected (bad_stream_id). */
  maxStreamIdBytes: number;
}

const NO_LIMITS: IngestLimits = { maxTopicBytes: 65_535, maxStreamIdBytes: 65_535 };

export class MqttIngest implements Stage {
  readonly name = 'ingest';
  private accepting = false;

  constructor(
    private readonly source: MessageSource,
    private readonly subscriptions: readonly Subscription[],
    /** By subscription index. */
    private readonly targets: readonly IngestTarget[],
    private readonly hooks: IngestHooks,
    private readonly limiter: StreamRateLimiter | null = null,
    private readonly limits: IngestLimits = NO_LIMITS,
  ) {}

  async start(): Promise<void> {
    this.accepting = true;
    this.source.listen(
      this.subscriptions.map((r) => ({ filter: r.filter, qos: r.qos })),
      (topic, payload, qos, done) => this.onMessage(topic, payload, qos, done),
      {
        onSubscribed: () => this.hooks.onSubscribed?.(),
        // A refused SUBSCRIBE is not a reading: it shows in readiness and the log, never as a rejection.
        onError: (err) => this.hooks.onSubscribeFailed(err),
      },
    );
  }

  /**
   * Stops intake: later messages are not acknowledged (the source gets an error, so no PUBACK goes
   * out), and the broker delivers them again to the next run of this persistent session.
   * Subscriptions are kept for the same reason. The first stage to stop: nothing new enters the pipeline.
   */
  async stop(): Promise<void> {
    this.accepting = false;
  }

  private onMessage(topic: string, payload: Uint8Array | string, packetQos: number, done: (err?: Error) => void): void {
    try {
      this.take(topic, payload, packetQos, done);
    } catch (err) {
      // A bug, not bad input: count it and let the message go, so one message cannot stop intake.
      this.hooks.onError?.(err instanceof Error ? err : new Error(String(err)));
      done();
    }
  }

  private take(topic: string, payload: Uint8Array | string, packetQos: number, done: (err?: Error) => void): void {
    if (!this.accepting) {
      this.hooks.onRefused?.(packetQos === 0 ? 0 : 1);
      done(new Error('intake stopped'));
      return;
    }
    if (!fitsBytes(topic, this.limits.maxTopicBytes)) {
      this.hooks.onReceived(null);
      this.hooks.onRejected('topic_too_long', `topic longer than ingest.maxTopicBytes ${this.limits.maxTopicBytes}`, topic.slice(0, 64));
      done();
      return;
    }
    let subscription: Subscription | null = null;
    let match = null;
    for (const candidate of this.subscriptions) {
      match = candidate.match(topic);
      if (match !== null) {
        subscription = candidate;
        break;
      }
    }
    this.hooks.onReceived(subscription);
    if (subscription === null || match === null) {
      this.hooks.onRejected('no_subscription', 'topic matches no subscription', topic);
      done();
      return;
    }
    const streamId = match.streamId;
    const problem = streamIdProblem(streamId, this.limits.maxStreamIdBytes);
    if (problem !== null) {
      this.hooks.onRejected('bad_stream_id', problem, topic);
      done();
      return;
    }
    // A message is delivered at the lower of its own and the subscription's QoS, as a broker would.
    const qos = packetQos === 0 || subscription.qos === 0 ? 0 : 1;
    if (this.limiter !== null) {
      if (qos === 0) {
        if (!this.limiter.allow(streamId, Date.now())) {
          this.hooks.onRejected('rate_limited', `stream ${streamId.slice(0, 64)} exceeds ingest.maxReadingsPerSecondPerStream`, topic);
          this.targets[subscription.index]?.sink.rejected?.(streamId, 'rate_limited');
          done();
          return;
        }
      } else {
        // At QoS 1 the broker holds what we have not acknowledged: a reading is never refused for its
        // pace, it waits for its stream's rate (a backlog after an outage catches up, nothing is lost).
        const wait = this.limiter.delay(streamId, Date.now());
        if (wait > 0) {
          this.hooks.onRateLimitWait?.();
          const channel = match.channel;
          setTimeout(() => this.resume(topic, subscription, streamId, channel, payload, done), wait);
          return;
        }
      }
    }
    this.admit(topic, subscription, streamId, match.channel, payload, qos, done);
  }

  /** A QoS 1 reading whose stream was over its rate: tries again once the bucket has a token. */
  private resume(topic: string, subscription: Subscription, streamId: string, channel: string | null, payload: Uint8Array | string, done: (err?: Error) => void): void {
    try {
      if (!this.accepting) {
        this.hooks.onRefused?.(1);
        done(new Error('intake stopped'));
        return;
      }
      const wait = this.limiter?.delay(streamId, Date.now()) ?? 0;
      if (wait > 0) {
        setTimeout(() => this.resume(topic, subscription, streamId, channel, payload, done), wait);
        return;
      }
      this.admit(topic, subscription, streamId, channel, payload, 1, done);
    } catch (err) {
      this.hooks.onError?.(err instanceof Error ? err : new Error(String(err)));
      done();
    }
  }

  private admit(topic: string, subscription: Subscription, streamId: string, channel: string | null, payload: Uint8Array | string, qos: 0 | 1, done: (err?: Error) => void): void {
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
    const target = this.targets[subscription.index] as IngestTarget;
    const result = target.parser.parse(subscription.format, streamId, channel, bytes, Date.now(), performance.now());
    if (!result.ok) {
      this.hooks.onRejected(result.reason, result.detail, topic);
      target.sink.rejected?.(streamId, result.reason);
      done();
      return;
    }
    target.sink.offer(result.reading, qos, done);
  }
}
