/** The MQTT connection shared by ingest (subscribe) and alerts (publish): persistent session, backoff, TLS. */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { format, inspect } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { urlUserinfo } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observe/log.js';

export interface ConnectionOptions {
  url: string;
  /** In-flight QoS 1 messages the broker may send before we acknowledge (MQTT 5 Receive Maximum). */
  receiveMaximum: number;
  will: { topic: string; payload: string };
  /**
   * MQTT 5 Maximum Packet Size: the broker must not send this client a larger packet (it drops the
   * message instead), so one huge publish cannot make mqtt.js buffer it whole. MQTT 3.1.1 has no such field.
   */
  maximumPacketSize?: number;
  /**
   * mqtt.js's own log (it calls it several times per packet). Without one, mqtt.js uses the `debug`
   * package, whose checks cost about as much as a payload parse even when nothing is printed.
   */
  log?: (...args: unknown[]) => void;
  /** Where re-reading the credential files reports a change, and files it cannot use (once per change of state). */
  logger: Pick<Logger, 'info' | 'warn'>;
  /** Options that win over the daemon's (the Sparkplug host's clean session, client id and will); `properties` are merged. */
  overrides?: Partial<IClientOptions>;
}

/** The largest packet MQTT can describe (a four-byte remaining length, plus the fixed header). */
const MAX_PACKET_SIZE = 268_435_460;

/**
 * The packet size to announce: room for four times the largest payload and topic Sentinel accepts (so
 * what it rejects as too large still arrives and is counted), and never below 1 MiB.
 */
export function maximumPacketSizeFor(maxPayloadBytes: number, maxTopicBytes: number): number {
  return Math.min(MAX_PACKET_SIZE, Math.max(1_048_576, 4 * (maxPayloadBytes + maxTopicBytes)));
}

function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new Error(`broker.${what}: cannot read ${path}: ${(err as Error).message}`);
  }
}

type CredentialKey = 'password' | 'ca' | 'cert' | 'key';

/** The files broker credentials come from, each with its config field and the mqtt.js option it fills. */
function credentialFiles(broker: Config['broker']): Array<{ field: string; path: string; key: CredentialKey }> {
  const files: Array<{ field: string; path: string; key: CredentialKey }> = [];
  if (broker.passwordFile !== undefined) files.push({ field: 'passwordFile', path: broker.passwordFile, key: 'password' });
  const tls = broker.tls;
  if (tls?.caFile) files.push({ field: 'tls.caFile', path: tls.caFile, key: 'ca' });
  if (tls?.certFile) files.push({ field: 'tls.certFile', path: tls.certFile, key: 'cert' });
  if (tls?.keyFile) files.push({ field: 'tls.keyFile', path: tls.keyFile, key: 'key' });
  return files;
}

export function clientOptions(broker: Config['broker'], options: ConnectionOptions): IClientOptions {
  const v5 = broker.protocolVersion === 5;
  const out: IClientOptions = {
    clientId: broker.clientId,
    protocolVersion: broker.protocolVersion,
    clean: false,
    keepalive: broker.keepaliveSeconds,
    reconnectPeriod: broker.reconnectMinMs,
    connectTimeout: 10_000,
    // Ingest subscribes on every CONNACK itself (see clientSource): mqtt.js's resubscribe loses a
    // SUBSCRIBE made before a refused CONNACK.
    resubscribe: false,
    // mqtt.js stops retrying after a refused CONNACK (bad credentials, server unavailable) unless told
    // otherwise; a daemon must keep trying (a rotated Secret or a broker coming up fixes it).
    reconnectOnConnackError: true,
    ...(options.log ? { log: options.log } : {}),
    will: { topic: options.will.topic, payload: Buffer.from(options.will.payload), qos: 1, retain: true },
    properties: v5
      ? {
          sessionExpiryInterval: broker.sessionExpirySeconds,
          receiveMaximum: Math.max(1, Math.min(65_535, options.receiveMaximum)),
          ...(options.maximumPacketSize === undefined ? {} : { maximumPacketSize: Math.max(1, Math.min(MAX_PACKET_SIZE, Math.floor(options.maximumPacketSize))) }),
        }
      : undefined,
  };
  if (options.overrides !== undefined) {
    const { properties, ...rest } = options.overrides;
    Object.assign(out, rest);
    if (properties !== undefined && out.properties !== undefined) out.properties = { ...out.properties, ...properties };
  }
  if (broker.username !== undefined) out.username = broker.username;
  if (broker.password !== undefined) out.password = broker.password;
  for (const { field, path, key } of credentialFiles(broker)) out[key] = readSecretFile(path, field);
  if (broker.tls) out.rejectUnauthorized = broker.tls.rejectUnauthorized;
  return out;
}

/** Passwords and keys read again after start-up (rotated files): every scrubber made in this process hides them too. */
const rereadSecrets = new Set<string>();

export interface CredentialReread {
  /** Fields whose file now holds something other than what the last attempt used, e.g. `tls.certFile`. */
  changed: string[];
  /** Why a file was not used, as `broker.<field>: …` (path and reason, never the content); its last good value stays. */
  problems: string[];
}

/**
 * Reads passwordFile and the TLS files again into `options`, which mqtt.js reads afresh on every
 * attempt (the TLS stream is built from the very same object, and CONNECT takes the password from it).
 * A file that cannot be read or is empty (a rewrite caught half-way), or TLS files that do not load
 * together (a key read before its new certificate), keep the last good values: an attempt with those
 * fails like any refused attempt, while a throw here would end the process from mqtt.js's timer.
 */
export function rereadCredentials(broker: Config['broker'], options: IClientOptions): CredentialReread {
  const changed: string[] = [];
  const problems: string[] = [];
  const next: Partial<Record<CredentialKey, string>> = {};
  for (const { field, path, key } of credentialFiles(broker)) {
    let text: string;
    try {
      text = readSecretFile(path, field);
    } catch (err) {
      problems.push((err as Error).message);
      continue;
    }
    if (text === '') problems.push(`broker.${field}: ${path} is empty`);
    else if (text !== options[key]) {
      next[key] = text;
      changed.push(field);
    }
  }
  if (next.ca !== undefined || next.cert !== undefined || next.key !== undefined) {
    try {
      createSecureContext({ ca: next.ca ?? options.ca, cert: next.cert ?? options.cert, key: next.key ?? options.key });
    } catch (err) {
      problems.push(`broker.tls: the changed files do not load together (${(err as Error).message}); keeping the previous ones`);
      delete next.ca;
      delete next.cert;
      delete next.key;
      for (let i = changed.length - 1; i >= 0; i--) if (changed[i]?.startsWith('tls.')) changed.splice(i, 1);
    }
  }
  Object.assign(options, next);
  if (next.password !== undefined) rereadSecrets.add(next.password);
  if (next.key !== undefined) rereadSecrets.add(next.key);
  return { changed, problems };
}

/**
 * Connects with exponential backoff between reconnects (mqtt.js retries at a fixed period, so the
 * period is doubled on every failed attempt and reset on success), re-reading the credential files
 * before every attempt so that a rotated Secret or a renewed certificate is picked up.
 */
export function connectBroker(broker: Config['broker'], options: ConnectionOptions): MqttClient {
  const client = mqtt.connect(options.url, clientOptions(broker, options));
  const { logger } = options;
  let reported = '';
  client.on('connect', () => {
    client.options.reconnectPeriod = broker.reconnectMinMs;
  });
  // Re-read at each attempt rather than watch the files: the values matter only when a connection is
  // opened (TLS and MQTT authenticate once per connection), and reading by path follows the `..data`
  // symlink that Kubernetes swaps when it updates a Secret volume, which an fs.watch on the file misses.
  // 'reconnect' is emitted synchronously just before mqtt.js opens the socket, so no timer is left to stop.
  client.on('reconnect', () => {
    const next = Math.min(broker.reconnectMaxMs, (client.options.reconnectPeriod ?? broker.reconnectMinMs) * 2);
    client.options.reconnectPeriod = next;
    const { changed, problems } = rereadCredentials(broker, client.options);
    const now = problems.join('; ');
    if (now !== reported) {
      if (now === '') logger.info('broker credential files usable again');
      else logger.warn({ problems }, 'broker credential files unusable: keeping the last good values');
      reported = now;
    }
    if (changed.length > 0) logger.info({ changed }, 'broker credentials changed: the next connection uses the new files');
  });
  return client;
}

function readSecretIfAny(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined; // connectBroker reports the unreadable file; nothing from it can be logged
  }
}

/** The password inside a URL's user:password part, both as written and decoded; mqtt.js splits at the last ':'. */
function urlPasswords(url: string | null): string[] {
  if (url === null) return [];
  const userinfo = urlUserinfo(url);
  if (userinfo === null) return [];
  const text = url.slice(userinfo.start, userinfo.end);
  const colon = text.indexOf(':');
  if (colon < 0) return [];
  const out = [text.slice(colon + 1), text.slice(text.lastIndexOf(':') + 1)];
  for (const written of [...out]) {
    try {
      out.push(decodeURIComponent(written));
    } catch {
      // not valid percent-encoding: mqtt.js uses it as written
    }
  }
  return out;
}

/** How a secret can appear in text: as is, escaped by util.inspect or JSON, percent-encoded, and each long line of a PEM key. */
function secretForms(secret: string): string[] {
  const forms = [secret, inspect(secret).slice(1, -1), JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret)];
  for (const line of secret.split('\n')) if (line.trim().length >= 16) forms.push(line.trim());
  return forms;
}

/** `password: '…'` (util.inspect of a CONNECT packet, any quote), `password: <Buffer …>`, `"password":"…"`. */
const PASSWORD_FIELD = String.raw`(\bpassword['"]?\s*[:=]\s*)(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\`(?:[^\`\\]|\\.)*\`|<Buffer[^>]*>)`;

/**
 * One scrubber for every secret the broker config holds (password, passwordFile's content, the
 * password in the URL, the TLS key): each occurrence, and any password field, becomes "[redacted]".
 * For mqtt.js's log and for broker error messages, which may quote the packet or the URL.
 */
export function secretScrubber(broker: Config['broker'], url: string | null): (text: string) => string {
  const secrets = [broker.password, readSecretIfAny(broker.passwordFile), ...urlPasswords(url), ...urlPasswords(broker.url), readSecretIfAny(broker.tls?.keyFile)];
  const build = (): RegExp => {
    const forms = new Set<string>();
    for (const secret of [...secrets, ...rereadSecrets]) if (secret !== undefined && secret !== '') for (const form of secretForms(secret)) forms.add(form);
    // Longest first, so a secret holding another is replaced whole.
    const literals = [...forms].sort((a, b) => b.length - a.length).map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    return new RegExp([PASSWORD_FIELD, ...literals].join('|'), 'g');
  };
  let pattern = build();
  let known = rereadSecrets.size;
  const replace = (_match: string, field: string | undefined): string => (field === undefined ? '[redacted]' : `${field}[redacted]`);
  return (text) => {
    if (rereadSecrets.size !== known) {
      pattern = build();
      known = rereadSecrets.size;
    }
    return text.replace(pattern, replace);
  };
}

/**
 * mqtt.js's log: pino at trace level (secrets scrubbed) when that is on, mqtt.js's `debug` output
 * (scrubbed alike, on stderr) when DEBUG asks for it, else nothing.
 */
export function brokerLog(log: Logger, broker: Config['broker'], url: string): (...args: unknown[]) => void {
  const wantsDebug = /mqttjs/.test(process.env.DEBUG ?? '');
  // A no-op rather than undefined: without a log, mqtt.js falls back to the costly `debug` checks.
  if (!wantsDebug && !log.isLevelEnabled('trace')) return () => undefined;
  const scrub = secretScrubber(broker, url);
  // DEBUG output is scrubbed too: mqtt.js's own `debug` would print the CONNECT packet's password.
  if (wantsDebug) return (...args) => process.stderr.write(`mqttjs:client ${scrub(format(...args))}\n`);
  const child = log.child({ component: 'mqtt.js' });
  return (...args) => child.trace(scrub(format(...args)));
}
