/** Credential files are read again before every reconnect: rotated values are used, unusable ones never replace good ones. */
import { readFileSync, rmSync } from 'node:fs';
import type { IClientOptions } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientOptions, connectBroker, rereadCredentials, secretScrubber, type ConnectionOptions } from '../../src/broker/connection.js';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { makePki, secretVolume, type TestPki } from '../support/certs.js';
import { freePort, waitUntil } from '../support/proc.js';

function broker(input: Record<string, unknown>): Config['broker'] {
  return validateConfig({ nodeName: 'n', broker: { url: 'mqtt://127.0.0.1:1', ...input } }).broker;
}

/** A logger that keeps what it is given (message and fields), as pino's `(fields, msg)` or `(msg)`. */
function capture() {
  const lines: Array<{ level: string; fields: unknown; msg: string }> = [];
  const line = (level: string) => (fields: unknown, msg?: string) =>
    lines.push(typeof fields === 'string' ? { level, fields: {}, msg: fields } : { level, fields, msg: msg ?? '' });
  const logger = { info: line('info'), warn: line('warn') } as unknown as ConnectionOptions['logger'];
  return { lines, logger };
}

const WILL: ConnectionOptions = { url: 'mqtt://127.0.0.1:1', receiveMaximum: 10, will: { topic: 's', payload: 'offline' }, logger: capture().logger };

let pki: TestPki;
const pem = (file: string): string => readFileSync(file, 'utf8');

beforeAll(() => {
  pki = makePki();
});
afterAll(() => {
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

describe('rereadCredentials', () => {
  it('picks up a password rotated through the `..data` swap, and reports only what changed', () => {
    const volume = secretVolume({ password: 'first-pw\n' });
    const config = broker({ username: 'u', passwordFile: volume.path('password') });
    const options = clientOptions(config, WILL);
    expect(options.password).toBe('first-pw');
    expect(rereadCredentials(config, options)).toEqual({ changed: [], problems: [] });

    volume.update({ password: 'second-pw\n' });
    expect(rereadCredentials(config, options)).toEqual({ changed: ['passwordFile'], problems: [] });
    expect(options.password).toBe('second-pw');
    expect(rereadCredentials(config, options).changed).toEqual([]);
  });

  it('keeps the last good password when the file is gone or empty, naming the field and never the value', () => {
    const volume = secretVolume({ password: 'kept-pw' });
    const config = broker({ username: 'u', passwordFile: volume.path('password') });
    const options = clientOptions(config, WILL);

    volume.break();
    const gone = rereadCredentials(config, options);
    expect(gone.changed).toEqual([]);
    expect(gone.problems).toEqual([expect.stringMatching(/^broker\.passwordFile: cannot read .*password: ENOENT/)]);
    expect(options.password).toBe('kept-pw');

    volume.update({ password: '  \n' });
    expect(rereadCredentials(config, options).problems).toEqual([expect.stringMatching(/^broker\.passwordFile: .* is empty$/)]);
    expect(options.password).toBe('kept-pw');

    volume.update({ password: 'next-pw' });
    expect(rereadCredentials(config, options)).toEqual({ changed: ['passwordFile'], problems: [] });
    expect(options.password).toBe('next-pw');
  });

  it('takes a renewed certificate and key together; a key that does not match, or a torn PEM, keeps the previous pair', () => {
    const volume = secretVolume({ 'ca.crt': pem(pki.caFile), 'tls.crt': pem(pki.clientCert), 'tls.key': pem(pki.clientKey) });
    const config = broker({ tls: { caFile: volume.path('ca.crt'), certFile: volume.path('tls.crt'), keyFile: volume.path('tls.key') } });
    const options: IClientOptions = clientOptions(config, WILL);
    const first = { ca: options.ca, cert: options.cert, key: options.key };

    // A new certificate with the old key: the pair cannot load, nothing changes.
    volume.update({ 'ca.crt': pem(pki.caFile), 'tls.crt': pem(pki.rogueCert), 'tls.key': pem(pki.clientKey) });
    const mismatched = rereadCredentials(config, options);
    expect(mismatched.changed).toEqual([]);
    expect(mismatched.problems).toEqual([expect.stringMatching(/^broker\.tls: the changed files do not load together .*; keeping the previous ones$/)]);
    expect({ ca: options.ca, cert: options.cert, key: options.key }).toEqual(first);

    volume.update({ 'ca.crt': pem(pki.caFile), 'tls.crt': pem(pki.clientCert).slice(0, 300), 'tls.key': pem(pki.clientKey) });
    expect(rereadCredentials(config, options).problems).toHaveLength(1);
    expect(options.cert).toBe(first.cert);

    volume.update({ 'ca.crt': pem(pki.caFile), 'tls.crt': pem(pki.rogueCert), 'tls.key': pem(pki.rogueKey) });
    expect(rereadCredentials(config, options)).toEqual({ changed: ['tls.certFile', 'tls.keyFile'], problems: [] });
    expect(options.cert).toBe(pem(pki.rogueCert).trim());
    expect(options.key).toBe(pem(pki.rogueKey).trim());
    expect(options.ca).toBe(first.ca);
  });

  it('a scrubber made before the rotation hides the new password', () => {
    const volume = secretVolume({ password: 'before-rotation' });
    const config = broker({ username: 'u', passwordFile: volume.path('password') });
    const scrub = secretScrubber(config, null);
    const options = clientOptions(config, WILL);
    volume.update({ password: 'after-rotation-3x!' });
    rereadCredentials(config, options);
    expect(scrub('refused: before-rotation / after-rotation-3x!')).toBe('refused: [redacted] / [redacted]');
  });
});

describe('connectBroker', () => {
  it('re-reads before each attempt: the attempt after a rotation carries the new password; problems are logged once per change', async () => {
    const volume = secretVolume({ password: 'old-pw' });
    const port = await freePort();
    const config = broker({ url: `mqtt://127.0.0.1:${port}`, username: 'u', passwordFile: volume.path('password'), reconnectMinMs: 10, reconnectMaxMs: 20 });
    const { lines, logger } = capture();
    const client = connectBroker(config, { ...WILL, url: config.url ?? '', logger });
    const attempts: unknown[] = [];
    client.on('reconnect', () => attempts.push(client.options.password));
    try {
      await waitUntil(() => attempts.length >= 2, 5_000, 'two attempts with the old password');
      volume.update({ password: 'new-pw' });
      await waitUntil(() => attempts.at(-1) === 'new-pw', 5_000, 'an attempt with the new password');

      volume.break();
      const broken = attempts.length;
      await waitUntil(() => attempts.length >= broken + 5, 5_000, 'five attempts while the file is gone');
      expect(attempts.at(-1)).toBe('new-pw');
      volume.update({ password: 'newest-pw' });
      await waitUntil(() => attempts.at(-1) === 'newest-pw', 5_000, 'an attempt after the file is back');
    } finally {
      await client.endAsync(true);
    }
    expect(lines.filter((l) => l.level === 'warn')).toEqual([
      { level: 'warn', fields: { problems: [expect.stringMatching(/^broker\.passwordFile: cannot read .*ENOENT/)] }, msg: 'broker credential files unusable: keeping the last good values' },
    ]);
    expect(lines.map((l) => l.msg)).toEqual([
      'broker credentials changed: the next connection uses the new files',
      'broker credential files unusable: keeping the last good values',
      'broker credential files usable again',
      'broker credentials changed: the next connection uses the new files',
    ]);
    expect(JSON.stringify(lines)).not.toMatch(/old-pw|new-pw|newest-pw/);
  });

  it('start-up still fails fast on an unreadable file, naming the field', () => {
    expect(() => clientOptions(broker({ passwordFile: '/nonexistent/pw' }), WILL)).toThrow(/^broker\.passwordFile: cannot read \/nonexistent\/pw/);
    expect(() => clientOptions(broker({ tls: { caFile: pki.caFile, certFile: pki.clientCert, keyFile: '/nonexistent/tls.key' } }), WILL)).toThrow(/^broker\.tls\.keyFile: cannot read/);
  });
});
