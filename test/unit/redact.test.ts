import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { brokerLog, secretScrubber } from '../../src/broker/connection.js';
import { redactUrl, urlUserinfo, validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/observe/log.js';

function broker(input: Record<string, unknown>): Config['broker'] {
  return validateConfig({ nodeName: 'n', broker: input }).broker;
}

function secretFile(name: string, text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sentinel-redact-')), name);
  writeFileSync(path, text);
  return path;
}

const CONNECT = { cmd: 'connect', protocolId: 'MQTT', clientId: 'sentinel-n', username: 'user' };

describe('redactUrl', () => {
  it.each([
    ['mqtt://u:secret@host:1883', 'mqtt://[redacted]@host:1883'],
    ['mqtt://u:Pa@ss@host:1883', 'mqtt://[redacted]@host:1883'],
    ['mqtt://u:Pa@ss@host', 'mqtt://[redacted]@host'],
    ['mqtts://u:a@b@c@host:8883/path@x?q=a@b#f@g', 'mqtts://[redacted]@host:8883/path@x?q=a@b#f@g'],
    ['mqtt://u:Pa%40ss@127.0.0.1:1883', 'mqtt://[redacted]@127.0.0.1:1883'],
    ['ws://u:p@host/mqtt', 'ws://[redacted]@host/mqtt'],
    ['mqtt://host:1883', 'mqtt://host:1883'],
    ['mqtt://host:1883/a@b', 'mqtt://host:1883/a@b'],
    ['mqtt://host?x=@y', 'mqtt://host?x=@y'],
    ['not a url u:p@h', 'not a url u:p@h'],
  ])('%s → %s', (url, redacted) => {
    expect(redactUrl(url)).toBe(redacted);
  });

  it('finds the user:password part up to the last "@" of the authority', () => {
    const url = 'mqtt://u:Pa@ss@host';
    const at = urlUserinfo(url);
    expect(at && url.slice(at.start, at.end)).toBe('u:Pa@ss');
    expect(urlUserinfo('mqtt://host')).toBeNull();
  });
});

describe('secretScrubber', () => {
  it('replaces the configured password wherever it appears, and any password field', () => {
    const scrub = secretScrubber(broker({ url: 'mqtt://h:1883', username: 'user', password: '123456' }), 'mqtt://h:1883');
    expect(scrub('sent 123456 twice: 123456')).toBe('sent [redacted] twice: [redacted]');
    expect(scrub("{ username: 'user', password: 'anything-else' }")).toBe("{ username: 'user', password: [redacted] }");
    expect(scrub('{ password: "it\'s" }')).toBe('{ password: [redacted] }');
    expect(scrub("{ password: 'a\\'b' }")).toBe('{ password: [redacted] }');
    expect(scrub('{ password: <Buffer 68 75 6e 74 65 72 32> }')).toBe('{ password: [redacted] }');
    expect(scrub('{"password":"x"}')).toBe('{"password":[redacted]}');
    expect(scrub('nothing secret here')).toBe('nothing secret here');
  });

  it('covers passwordFile content, the URL password (written and decoded) and the TLS key', () => {
    const passwordFile = secretFile('password', 'from-the-file-pw\n');
    const key = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n';
    const keyFile = secretFile('client.key', key);
    const certFile = secretFile('client.crt', 'cert');
    const url = 'mqtt://user:Pa%40ss@127.0.0.1:1883';
    const scrub = secretScrubber(broker({ url, username: 'user', passwordFile, tls: { certFile, keyFile } }), url);
    expect(scrub('pw from-the-file-pw')).toBe('pw [redacted]');
    expect(scrub(`url ${url}`)).not.toContain('Pa%40ss');
    expect(scrub('decoded Pa@ss')).toBe('decoded [redacted]');
    expect(scrub(`key ${key}`)).not.toMatch(/MIIEvQ/);
    expect(scrub(`inspected ${JSON.stringify(key)}`)).not.toMatch(/MIIEvQ/);
    const raw = 'mqtt://u:Pa@ss@host:1883';
    expect(secretScrubber(broker({ url: raw }), raw)(`error connecting to ${raw}`)).toBe('error connecting to mqtt://u:[redacted]@host:1883');
  });

  it('a password with regex or quote characters is matched literally, also as util.inspect escapes it', () => {
    const password = String.raw`a.b*c\d'e"f` + '`g';
    const scrub = secretScrubber(broker({ password }), null);
    expect(scrub(`x ${password} y`)).toBe('x [redacted] y');
    expect(scrub('x aXb y')).toBe('x aXb y');
    expect(scrub(`packet ${JSON.stringify({ p: password })}`)).toBe('packet {"p":"[redacted]"}');
    expect(scrub(`packet ${inspect({ p: password })}`)).toBe("packet { p: '[redacted]' }");
  });

  it('an unreadable passwordFile does not throw (connecting reports it)', () => {
    expect(secretScrubber(broker({ passwordFile: '/nonexistent/password' }), null)('text')).toBe('text');
  });
});

describe('brokerLog', () => {
  function capture(level: string): { log: ReturnType<typeof createLogger>; text: () => string } {
    const stream = new PassThrough();
    let out = '';
    stream.on('data', (d: Buffer) => (out += d.toString()));
    return { log: createLogger(level, stream), text: () => out };
  }

  it('at trace: mqtt.js lines reach pino with the CONNECT password scrubbed', async () => {
    const { log, text } = capture('trace');
    const url = 'mqtt://user:url-secret@h:1883';
    const mqttLog = brokerLog(log, broker({ url, username: 'user', password: 'cfg-secret' }), url);
    mqttLog('_writePacket :: packet: %O', { ...CONNECT, password: 'cfg-secret' });
    mqttLog('_writePacket :: packet: %O', { ...CONNECT, password: Buffer.from('cfg-secret') });
    mqttLog('connecting to %s', url);
    await new Promise((resolve) => setImmediate(resolve));
    const out = text();
    expect(out).toContain('"component":"mqtt.js"');
    expect(out).toContain('_writePacket');
    expect(out).toContain("password: [redacted]");
    expect(out).not.toContain('cfg-secret');
    expect(out).not.toContain('url-secret');
    expect(out).not.toMatch(/63 66 67/); // "cfg" in a Buffer's hex
  });

  it('below trace: a no-op (so mqtt.js skips its own debug checks) that logs nothing', async () => {
    const { log, text } = capture('debug');
    const mqttLog = brokerLog(log, broker({ password: 'x' }), 'mqtt://h:1883');
    expect(typeof mqttLog).toBe('function');
    mqttLog('_writePacket :: packet: %O', CONNECT);
    await new Promise((resolve) => setImmediate(resolve));
    expect(text()).toBe('');
  });
});
