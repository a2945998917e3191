/**
 * The alert publisher against a real Mosquitto (SENTINEL_TEST_MQTT_URL, else 127.0.0.1:1883): alerts
 * the broker can never take are given up once, before or instead of the journal, and never cost the
 * connection; a full journal (a real tmpfs) still publishes.
 */
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { ErrorWithReasonCode, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { alertSchema, type Alert } from '../../src/alert/alert.js';
import { AlertOutbox } from '../../src/alert/outbox.js';
import { sampleAlert as alert } from '../support/alert.js';
import { MAX_TOPIC_BYTES, MqttAlertPublisher, type UndeliverableReason } from '../../src/alert/publisher.js';
import { uniquePrefix, waitFor } from '../support/broker.js';
import { mountTmpfs, type Tmpfs } from '../support/tmpfs.js';

const MQTT_URL = process.env.SENTINEL_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

describe('MqttAlertPublisher through a real Mosquitto', () => {
  const clients: MqttClient[] = [];
  let prefix: string;
  let received: Alert[];
  let closes: number;
  let client: MqttClient;
  let path: string;
  let outbox: AlertOutbox;
  const events: string[] = [];
  const hooks = {
    onPublished: (a: Alert) => events.push(`published:${a.streamId.slice(0, 16)}`),
    onFailed: (a: Alert, err: Error) => events.push(`failed:${a.streamId.slice(0, 16)}:${err.message}`),
    onDropped: (a: Alert) => events.push(`dropped:${a.streamId.slice(0, 16)}`),
    onUndeliverable: (a: Alert, reason: UndeliverableReason) => events.push(`undeliverable:${a.streamId.slice(0, 16)}:${reason}`),
    onJournalFailed: (a: Alert, err: Error) => events.push(`journal:${a.streamId.slice(0, 16)}:${err.message.slice(0, 40)}`),
  };

  async function connect(): Promise<MqttClient> {
    const c = await mqtt.connectAsync(MQTT_URL, { protocolVersion: 5, reconnectPeriod: 100, connectTimeout: 5_000 });
    clients.push(c);
    return c;
  }

  beforeAll(async () => {
    client = await connect();
    client.on('close', () => closes++);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
  });
  afterEach(() => {
    outbox.close();
  });

  async function setUp(journal?: string[]): Promise<void> {
    events.length = 0;
    closes = 0;
    prefix = uniquePrefix('publisher');
    path = join(mkdtempSync(join(tmpdir(), 'sentinel-publisher-')), 'outbox.jsonl');
    if (journal) appendFileSync(path, journal.map((l) => `${l}\n`).join(''));
    received = [];
    const watcher = await connect();
    watcher.on('message', (topic, payload) => {
      if (topic.startsWith(`${prefix}/`)) received.push(alertSchema.parse(JSON.parse(payload.toString())));
    });
    await watcher.subscribeAsync(`${prefix}/#`, { qos: 1 });
  }

  function open(dir = path): { publisher: MqttAlertPublisher; pending: Alert[] } {
    outbox = new AlertOutbox(dir, 100);
    const { pending } = outbox.open();
    return { publisher: new MqttAlertPublisher(client, prefix, outbox, hooks), pending };
  }

  const stillPending = (): string[] => {
    const fresh = new AlertOutbox(path, 100);
    const ids = fresh.open().pending.map((a) => a.streamId.slice(0, 16));
    fresh.close();
    return ids;
  };

  it('gives up an alert whose topic is too long or invalid before journaling it; the connection carries on', async () => {
    await setUp();
    const { publisher } = open();
    const tooLong = alert(1, 'x'.repeat(MAX_TOPIC_BYTES));
    const wildcard = alert(2, 'pump+1');
    const control = alert(3, 'pump\u00011');
    for (const a of [tooLong, wildcard, control]) expect(() => publisher.send(a)).not.toThrow();
    publisher.send(alert(4, 'pump-4'));
    await publisher.flush();
    await waitFor(() => received.length === 1, 5_000, 'the good alert');
    expect(events).toEqual([
      'undeliverable:xxxxxxxxxxxxxxxx:topic_too_long',
      'undeliverable:pump+1:invalid_topic',
      'undeliverable:pump\u00011:invalid_topic',
      'published:pump-4',
    ]);
    expect(received.map((a) => a.streamId)).toEqual(['pump-4']);
    // Never journaled, so never replayed; and Mosquitto never saw them, so it never hung up.
    expect(readFileSync(path, 'utf8')).not.toMatch(/xxxxxxxx|pump\+1|pump\\u00011/);
    expect(stillPending()).toEqual([]);
    expect(closes).toBe(0);
  });

  it('replays a journal holding poison alerts: each is given up once, marked done, and the rest is delivered in order', async () => {
    const lines = [alert(1, 'pump-1'), alert(2, 'y'.repeat(70_000)), alert(3, 'pump#3'), alert(4, 'pump-4')].map((a) => JSON.stringify({ add: a }));
    await setUp(lines);
    const { publisher, pending } = open();
    expect(pending).toHaveLength(4);
    publisher.replay(pending);
    await publisher.flush();
    await waitFor(() => received.length === 2, 5_000, 'the replayed alerts');
    expect(events).toEqual(['undeliverable:yyyyyyyyyyyyyyyy:topic_too_long', 'undeliverable:pump#3:invalid_topic', 'published:pump-1', 'published:pump-4']);
    expect(received.map((a) => a.streamId)).toEqual(['pump-1', 'pump-4']);
    expect(stillPending()).toEqual([]);
    expect(closes).toBe(0);
  });

  it('gives up (and takes out of mqtt.js) an alert whose publish throws; a fresh connection carries the next one', async () => {
    await setUp();
    const { publisher } = open();
    const publish = client.publish.bind(client);
    // The real mqtt.js, made to write a topic it cannot encode: it stores the packet, then throws mid-write.
    client.publish = ((topic: string, message: string, opts: object, cb: () => void) => publish(`${topic}/${'z'.repeat(MAX_TOPIC_BYTES)}`, message, opts, cb)) as MqttClient['publish'];
    try {
      expect(() => publisher.send(alert(1, 'pump-1'))).not.toThrow();
    } finally {
      client.publish = publish;
    }
    await publisher.flush();
    expect(events).toEqual(['undeliverable:pump-1:publish_error']);
    expect(Object.keys(client.outgoing)).toEqual([]);
    publisher.send(alert(2, 'pump-2'));
    await publisher.flush();
    await waitFor(() => received.length === 1, 5_000, 'the next alert');
    expect(received.map((a) => a.streamId)).toEqual(['pump-2']);
    expect(events).toEqual(['undeliverable:pump-1:publish_error', 'published:pump-2']);
    expect(stillPending()).toEqual([]);
  });

  it('a PUBACK reason code no retry can change gives the alert up; a retryable one keeps it in the outbox', async () => {
    await setUp();
    const { publisher } = open();
    const publish = client.publish.bind(client);
    // Mosquitto answers a bad topic by hanging up, not with a reason code: other brokers do (EMQX, HiveMQ).
    let code = 0x90;
    client.publish = ((_t: string, _m: string, _o: object, cb: (err?: Error) => void) => {
      cb(new ErrorWithReasonCode('Publish error: broker says no', code));
      return client;
    }) as MqttClient['publish'];
    try {
      publisher.send(alert(1, 'pump-1'));
      code = 0x87; // Not authorized: an ACL can be fixed
      publisher.send(alert(2, 'pump-2'));
    } finally {
      client.publish = publish;
    }
    await publisher.flush();
    expect(events).toEqual(['undeliverable:pump-1:publish_error', 'failed:pump-2:Publish error: broker says no']);
    expect(stillPending()).toEqual(['pump-2']);
  });

  it('publishes, unjournaled, an alert the journal cannot read back (score Infinity), and says so', async () => {
    await setUp();
    const { publisher } = open();
    publisher.send({ ...alert(1, 'pump-1'), score: Number.POSITIVE_INFINITY });
    await publisher.flush();
    expect(events).toEqual([expect.stringMatching(/^journal:pump-1:alert does not match the alert schema/), 'published:pump-1']);
    expect(outbox.journalError).toBeNull();
    expect(readFileSync(path, 'utf8')).toBe('');
  });

  describe('on a full disk (a real 64 KiB tmpfs)', () => {
    let fs: Tmpfs;
    beforeAll(() => {
      fs = mountTmpfs(64);
    });
    afterAll(() => fs.dispose());

    it('publishes every alert and reports each one it could not journal; journals again once space is back', async () => {
      await setUp();
      path = join(fs.dir, 'outbox.jsonl');
      const { publisher } = open(path);
      fs.fill();
      try {
        expect(() => publisher.send(alert(1, 'pump-1'))).not.toThrow();
        publisher.send(alert(2, 'pump-2'));
        await publisher.flush();
        await waitFor(() => received.length === 2, 5_000, 'alerts published without the journal');
        expect(events).toEqual(['journal:pump-1:ENOSPC: no space left on device, write', 'journal:pump-2:ENOSPC: no space left on device, write', 'published:pump-1', 'published:pump-2']);
        expect(outbox.journalError).toMatch(/ENOSPC/);
      } finally {
        fs.free();
      }
      publisher.send(alert(3, 'pump-3'));
      expect(outbox.journalError).toBeNull();
      await publisher.flush();
      expect(events.slice(4)).toEqual(['published:pump-3']);
      await waitFor(() => received.length === 3, 5_000, 'the third alert');
      expect(stillPending()).toEqual([]);
    });
  });
});
